"""OpenTofu and the Terraform providers, built from the Go module proxy and run offline.

``tofu`` and each provider are built once per version into ``~/.cache/srs`` by
``scripts/build-terraform.sh`` (each build timed, its report kept beside it). Providers go
into a filesystem mirror, and the CLI configuration written here names only that mirror:
``tofu init`` never asks a network registry for anything.

A provider that cannot be used is recorded with the reason, once: a failed build leaves
``<mirror>/<name>-<version>.failed`` holding the command and the compiler's last lines
(delete the file to try again), and a built provider that speaks a plugin protocol
OpenTofu does not (it speaks 5 and 6) is reported as such.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devstack import settings
from devstack.settings import Paths

BUILD_SCRIPT: Final = Path(__file__).parent / "scripts" / "build-terraform.sh"
#: Plugin protocols OpenTofu speaks.
TOFU_PROTOCOLS: Final = (5, 6)
#: What tofu's go-plugin client tells a provider it starts: the handshake cookie every
#: Terraform plugin checks, and the protocols on offer (the provider answers with the
#: newest it shares, or with its own default when it shares none).
_PLUGIN_HANDSHAKE: Final = {
    "TF_PLUGIN_MAGIC_COOKIE": "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
    "PLUGIN_PROTOCOL_VERSIONS": ",".join(map(str, TOFU_PROTOCOLS)),
}


class ToolMissing(RuntimeError):
    """Something the build needs is not installed; the message names it in one line."""


@dataclass(frozen=True)
class Provider:
    """One provider of the mirror: where it is, which protocol it speaks, or why it is unusable."""

    name: str
    version: str
    binary: Path | None
    protocol: int | None = None
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.binary is not None and self.problem is None


def provider_binary(mirror: Path, name: str, version: str) -> Path:
    """Where the filesystem mirror keeps a provider (the layout ``tofu init`` reads)."""
    return (
        mirror / "registry.opentofu.org" / "hashicorp" / name / version / "linux_amd64"
        / f"terraform-provider-{name}_v{version}"
    )  # fmt: skip


def _require_go() -> None:
    if shutil.which("go") is None:
        raise ToolMissing("go is not installed: Go 1.26+ builds OpenTofu and the providers (first run only)")
    if not Path("/usr/bin/time").is_file():
        raise ToolMissing("/usr/bin/time is missing (Debian package `time`): it measures each build")


def ensure_tofu(paths: Paths, progress: Callable[[str], None]) -> Path:
    """The ``tofu`` binary, built from the module proxy when missing (first run only, ~10 min)."""
    out = paths.tofu_bin
    if out.is_file():
        return out
    _require_go()
    progress(f"building OpenTofu {settings.TOFU_VERSION} from Go sources into {out.parent} (first run only)")
    subprocess.run(["bash", str(BUILD_SCRIPT), "tofu", settings.TOFU_VERSION, str(out.parent)], check=True)
    return out


def ensure_providers(paths: Paths, progress: Callable[[str], None]) -> dict[str, Provider]:
    """Every provider of ``settings.TOFU_PROVIDERS``, built when missing; unusable ones say why."""
    found: dict[str, Provider] = {}
    for name, version in settings.TOFU_PROVIDERS.items():
        found[name] = _ensure_provider(paths.tofu_mirror, name, version, progress)
    return found


def _ensure_provider(mirror: Path, name: str, version: str, progress: Callable[[str], None]) -> Provider:
    binary = provider_binary(mirror, name, version)
    failed = mirror / f"{name}-{version}.failed"
    if not binary.is_file():
        if failed.is_file():
            return Provider(name, version, None, problem=failed.read_text().strip())
        _require_go()
        progress(f"building terraform-provider-{name} v{version} from Go sources into {mirror} (first run only)")
        command = ["bash", str(BUILD_SCRIPT), "provider", name, version, str(mirror)]
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            tail = "\n".join(result.stdout.strip().splitlines()[-15:])
            mirror.mkdir(parents=True, exist_ok=True)
            failed.write_text(f"build failed: {' '.join(command)}\n{tail}\n")
            progress(f"terraform-provider-{name} v{version} did not build (details in {failed})")
            return Provider(name, version, None, problem=failed.read_text().strip())
    protocol = plugin_protocol(binary)
    if protocol not in TOFU_PROTOCOLS:
        return Provider(
            name, version, binary, protocol,
            problem=f"terraform-provider-{name} v{version} speaks plugin protocol {protocol}; "
            f"OpenTofu speaks {' and '.join(map(str, TOFU_PROTOCOLS))}",
        )  # fmt: skip
    return Provider(name, version, binary, protocol)


def plugin_protocol(binary: Path, timeout: float = 30) -> int | None:
    """The plugin protocol a provider announces in its go-plugin handshake line, e.g. ``1|5|unix|…|grpc``."""
    with subprocess.Popen(
        [str(binary)], env={**os.environ, **_PLUGIN_HANDSHAKE}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdout is not None
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                if not sel.select(timeout):
                    return None
                line = proc.stdout.readline().decode(errors="replace")
        finally:
            proc.kill()
    match = re.match(r"^\d+\|(\d+)\|", line)
    return int(match.group(1)) if match else None


def build_stats(paths: Paths) -> dict[str, tuple[str, int]]:
    """Wall time and peak RSS (MB) of each build, from the ``/usr/bin/time -v`` reports kept beside it."""
    reports = {f"tofu {settings.TOFU_VERSION}": paths.tofu_bin.parent / "build-stats.txt"}
    for name, version in settings.TOFU_PROVIDERS.items():
        reports[f"{name} {version}"] = paths.tofu_mirror / f"build-stats-{name}-{version}.txt"
    out: dict[str, tuple[str, int]] = {}
    for what, report in reports.items():
        if not report.is_file():
            continue
        text = report.read_text()
        wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", text)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        if wall and rss:
            out[what] = (wall.group(1), int(rss.group(1)) // 1024)
    return out


def write_cli_config(path: Path, mirror: Path) -> Path:
    """A tofu CLI configuration that installs providers from the mirror only (no network registry)."""
    path.write_text(
        "# Written by srs (devstack/terraform.py): providers come from the local mirror only.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path = "{mirror}"\n'
        "  }\n"
        "}\n"
    )
    return path


class TofuError(RuntimeError):
    """A tofu command failed; the message carries its output's last lines."""


@dataclass(frozen=True)
class Tofu:
    """Runs ``tofu`` with the mirror-only CLI configuration and a data directory of its own."""

    binary: Path
    cli_config: Path
    data_dir: Path

    def env(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        return {
            **os.environ,
            "TF_CLI_CONFIG_FILE": str(self.cli_config),
            "TF_DATA_DIR": str(self.data_dir),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            **extra,
        }

    def run(self, cwd: Path, *args: str, env: Mapping[str, str] = {}, timeout: float = 900) -> str:
        """Run ``tofu ARGS`` in ``cwd``; its combined output, or TofuError with the last lines."""
        result = subprocess.run(
            [str(self.binary), *args], cwd=cwd, env=self.env(env), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=timeout,
        )  # fmt: skip
        if result.returncode != 0:
            tail = "\n".join(result.stdout.strip().splitlines()[-40:])
            raise TofuError(f"tofu {' '.join(args)} (in {cwd}) exited {result.returncode}:\n{tail}")
        return result.stdout
