"""Debian packages the stack needs (Docker, Prometheus, redis, mmdebstrap, kcat), installed
on first use when running as root, one apt at a time across srs processes."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

from devstack import locks

Progress = Callable[[str], None]


def install(packages: Sequence[str], progress: Progress, error: type[Exception] = RuntimeError) -> None:
    """Install ``packages`` from Debian unless every one is installed; ``error`` (one line naming
    the packages) when not root, or when apt fails (with apt's last output)."""
    if all(_installed(p) for p in packages):
        return
    names = " ".join(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise error(f"missing Debian packages: {names} (apt-get install {names}), or run as root so srs can")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with locks.exclusive(locks.MACHINE_LOCKS, "srs-apt", "apt (another srs process installs packages)", progress):
        if all(_installed(p) for p in packages):
            return
        progress(f"installing Debian packages {', '.join(packages)} (first run only, ~1 min)")
        # DPkg::Lock::Timeout: wait for an apt that is not ours (unattended upgrades) instead of failing.
        command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300"]
        for attempt in (1, 2):
            done = subprocess.run([*command, *packages], env=env, capture_output=True, text=True)
            if done.returncode == 0:
                return
            if attempt == 1:
                # A fresh machine may have no package lists yet.
                subprocess.run(
                    ["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"], env=env, capture_output=True
                )
    raise error(f"apt-get install {names} failed:\n{done.stderr[-2000:]}")


def _installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:  # not Debian: install() then says what is missing
        return False
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.endswith(" installed")
