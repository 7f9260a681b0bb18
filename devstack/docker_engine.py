"""A Docker engine for the cluster path: use the one that answers, or install and start one.

kind nodes are privileged containers. On machines whose capability bounding set or hard
rlimits are smaller than what a privileged container asks for (Firecracker VMs, nested
sandboxes), runc refuses them. When srs starts the engine itself it registers
``srs-runc`` (devstack/containers/ociwrapper) as the default runtime: it fits each
container's spec to what the machine can grant and then runs runc unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from devstack import apt, locks
from devstack.gobuild import build_go_binary
from devstack.processes import spawn

Progress = Callable[[str], None]


class EngineUnavailable(RuntimeError):
    """No Docker engine answers and srs cannot start one; the message says what to do."""


def docker(*args: str, check: bool = True, capture: bool = True, timeout: float | None = None) -> str:
    """Run the docker CLI; return its stdout."""
    done = subprocess.run(
        ["docker", *args], check=check, text=True, timeout=timeout,
        stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None,
    )  # fmt: skip
    return done.stdout or ""


def answers() -> bool:
    """True when a Docker engine answers the CLI."""
    if shutil.which("docker") is None:
        return False
    try:
        subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], check=True, capture_output=True, timeout=20
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True


def image_exists(tag: str) -> bool:
    """True when the engine holds an image of that name."""
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


WRAPPER_SOURCE = Path(__file__).parent / "containers" / "ociwrapper"


def build_runtime_wrapper(cache: Path) -> Path:
    """srs-runc, compiled (a few seconds; Go from the machine) into ``cache`` once per content
    of its source: an edit of ``devstack/containers/ociwrapper`` builds a new one."""
    return build_go_binary(WRAPPER_SOURCE, cache, "srs-runc", what="the srs-runc runtime", error=EngineUnavailable)


INSTALLED_WRAPPER = Path("/usr/local/bin/srs-runc")


def _install_wrapper(built: Path) -> None:
    """Put srs-runc where dockerd finds it (outside the cache, so cleaning the cache keeps
    the engine working); replaced atomically, so running containers are not disturbed."""
    if INSTALLED_WRAPPER.is_file() and INSTALLED_WRAPPER.read_bytes() == built.read_bytes():
        return
    staging = INSTALLED_WRAPPER.with_name(".srs-runc.new")
    shutil.copyfile(built, staging)
    staging.chmod(0o755)
    staging.replace(INSTALLED_WRAPPER)


def ensure_engine(cache: Path, logs: Path, progress: Progress) -> None:
    """Make sure a Docker engine answers; install Debian's docker.io and start dockerd if needed
    (its runtime srs-runc built into ``cache``)."""
    if answers():
        if INSTALLED_WRAPPER.is_file() and os.geteuid() == 0:
            _install_wrapper(build_runtime_wrapper(cache))  # an engine srs started: keep its runtime current
        return
    if shutil.which("dockerd") is None:
        apt.install(["docker.io"], progress, EngineUnavailable)
    if answers():  # the package's service may have started it
        return
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers and only root can start dockerd; start Docker and retry")
    with locks.exclusive(locks.MACHINE_LOCKS, "srs-dockerd", "the Docker engine", progress):
        if not answers():
            _start_engine(cache, logs, progress)


def _start_engine(cache: Path, logs: Path, progress: Progress) -> None:
    _install_wrapper(build_runtime_wrapper(cache))
    progress("starting dockerd (overlay2; runtime srs-runc fits privileged containers to this machine)")
    record = spawn(
        "dockerd",
        ["dockerd", "--storage-driver=overlay2", f"--add-runtime=srs-runc={INSTALLED_WRAPPER}",
         "--default-runtime=srs-runc"],
        logs / "dockerd.log",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not answers():
        if not record.is_alive():
            raise EngineUnavailable(f"dockerd exited; see {record.log}")
        if time.monotonic() > deadline:
            raise EngineUnavailable(f"dockerd did not answer within 60 s; see {record.log}")
        time.sleep(0.5)
