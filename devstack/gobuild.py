"""Compile one of the project's small Go programs with the machine's Go, once.

The result is cached by path: the caller names the file, and a file that is there is
used as it is. The build writes next to the target and renames, so concurrent first runs
never see half a binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def build_go_binary(source: Path, target: Path, *, what: str, error: type[Exception] = RuntimeError) -> Path:
    """``target`` built from the Go main package in ``source`` (static, no cgo), unless it is there.

    ``error`` is raised, naming ``what``, when Go is missing or the build fails (with the
    compiler's output).
    """
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
