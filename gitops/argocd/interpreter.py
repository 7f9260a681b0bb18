"""Argo CD's Lua interpreter for health checks, built here from gopher-lua.

``luahealth/`` is a small Go program that runs a ``health.lua`` the way Argo CD's
``util/lua`` does: the same VM (gopher-lua, the version Argo CD pins), the object as the
global ``obj``, the returned table turned into ``{status, message}`` through JSON, and the
same libraries — by default what a script pasted into ``argocd-cm`` gets (base, table,
package; ``os.time``/``os.date`` only through ``require("os")``, as Argo CD registers
them; no string or math library), or every standard library as Argo CD gives its
built-in scripts.

The binary is built on first use through the Go module proxy and cached under
``$SRS_CACHE_DIR`` (default ``~/.cache/srs``), keyed by a hash of its sources, so later
runs start at once.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from devstack.gobuild import build_go_binary
from devstack.settings import default_paths
from gitops.argocd.healthchecks import CUSTOMIZATIONS

SOURCE: Final = Path(__file__).resolve().parent / "luahealth"


class Libs(StrEnum):
    """Which Lua libraries a script gets."""

    ARGOCD_CM = "argocd-cm"  # custom checks from argocd-cm (useOpenLibs unset)
    BUILT_IN = "built-in"  # Argo CD's own resource_customizations


@dataclass(frozen=True)
class Health:
    """Argo CD's HealthStatus."""

    status: str
    message: str = ""


@dataclass(frozen=True)
class CaseResult:
    """One case of a health_test.yaml, as the interpreter judged it."""

    check: str  # e.g. srs.dev/SupportAgent
    input_path: str
    libs: str
    want: Health
    got: Health
    error: str
    passed: bool


def binary() -> Path:
    """The interpreter, built into the cache on first use (and again whenever its source changes)."""
    return build_go_binary(SOURCE, default_paths().cache, "luahealth", what="the Argo CD Lua interpreter")


def run_cases(
    root: Path = CUSTOMIZATIONS, libs: Libs = Libs.ARGOCD_CM, scripts: Mapping[str, Path] | None = None
) -> list[CaseResult]:
    """Every case of every health_test.yaml under ``root``; ``scripts`` replaces the health.lua
    of a check (``{"srs.dev/SupportAgent": path}``)."""
    cmd = [str(binary()), "test", "-libs", libs.value]
    for check, path in (scripts or {}).items():
        cmd += ["-script", f"{check}={path}"]
    proc = subprocess.run([*cmd, str(root)], capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"luahealth test failed ({proc.returncode}): {proc.stderr}")
    results = []
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        results.append(
            CaseResult(
                check=r["check"],
                input_path=r["inputPath"],
                libs=r["libs"],
                want=Health(**r["want"]),
                got=Health(**r["got"]),
                error=r.get("error", ""),
                passed=r["pass"],
            )
        )
    return results


def evaluate(script: Path, objects: Iterable[Mapping[str, Any]], libs: Libs = Libs.ARGOCD_CM) -> list[Health]:
    """The health ``script`` gives each object (a Kubernetes object as a dict)."""
    stdin = "".join(json.dumps(o) + "\n" for o in objects)
    proc = subprocess.run(
        [str(binary()), "eval", "-libs", libs.value, str(script)], input=stdin, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"luahealth eval failed ({proc.returncode}): {proc.stderr}")
    out = []
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        if "error" in r:
            raise RuntimeError(f"{script}: {r['error']}")
        out.append(Health(status=r["status"], message=r["message"]))
    return out


def health_script(check: str, root: Path = CUSTOMIZATIONS) -> Path:
    """The health.lua of ``check`` (``srs.dev/SupportAgent``)."""
    return root / check / "health.lua"
