"""Compile one of the project's small Go programs with the machine's Go, once per source content.

The result is cached by the content that produces it: ``CACHE/NAME-DIGEST/NAME``, where
DIGEST covers every file of the Go package (``go.mod``, ``go.sum``, the ``.go`` files). An
edit of the source therefore builds a new binary on the next use; an unchanged source is
never rebuilt. The build writes next to the target and renames, so concurrent first runs
never see half a binary.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def source_digest(source: Path) -> str:
    """A digest of every file under ``source`` (relative path and content), 12 hex digits."""
    h = hashlib.sha256()
    for f in sorted(p for p in source.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(source)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def build_go_binary(source: Path, cache: Path, name: str, *, what: str, error: type[Exception] = RuntimeError) -> Path:
    """``CACHE/NAME-DIGEST/NAME`` built from the Go main package in ``source`` (static, no cgo),
    unless it is there.

    ``error`` is raised, naming ``what``, when Go is missing or the build fails (with the
    compiler's output).
    """
    target = cache / f"{name}-{source_digest(source)}" / name
    if target.is_file():
        return target
    if shutil.which("go") is None:
        raise error(f"building {what} needs Go 1.24+ on PATH (https://go.dev/doc/install)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
    os.close(fd)
    try:
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", tmp, "."],
            cwd=source, env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"},
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        os.chmod(tmp, 0o755)  # noqa: S103 - an executable, like go build's own output
        os.replace(tmp, target)
    except subprocess.CalledProcessError as e:
        raise error(f"building {what} from {source} failed:\n{e.stderr}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
