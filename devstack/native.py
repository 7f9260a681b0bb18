"""The compiled step of the offline classifier (``native/``, Rust built by maturin), built once
per source content and installed into an environment.

``make install`` runs ``python -m devstack.native``: it builds a wheel of ``native/`` unless
one of the same sources is cached (``CACHE/native/srs_native-DIGEST/``, DIGEST covering the
crate's files and the Python version the wheel is for) and installs it into the interpreter's
environment; the image build copies the same wheel into ``build/wheels``. The compiled crates
(pyo3 and its dependencies) are kept in ``CACHE/native/target``, so a changed source compiles
only the crate itself. Rust comes from the machine (``cargo`` on PATH or in ``~/.cargo/bin``,
as rustup installs it; Rust 1.74 or newer).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from devstack.settings import default_paths

#: The crate, beside this package in the project (a wheel of srs does not carry it).
SOURCE = Path(__file__).resolve().parent.parent / "native"
#: What the wheel is built from (the build's own output, target/, is not).
_SOURCES = ("Cargo.toml", "Cargo.lock", "pyproject.toml", "src", "srs_native")


class NativeBuildError(RuntimeError):
    """The compiled step could not be built; the message says why and what to do."""


def source_digest() -> str:
    """A digest of the crate's sources and the Python the wheel is built for, 16 hex digits."""
    h = hashlib.sha256(f"cp{sys.version_info.major}{sys.version_info.minor}:{sys.platform}".encode())
    for name in _SOURCES:
        root = SOURCE / name
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts:
                continue
            h.update(str(f.relative_to(SOURCE)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _cargo() -> Path:
    found = shutil.which("cargo")
    if found:
        return Path(found)
    rustup = Path.home() / ".cargo" / "bin" / "cargo"
    if rustup.is_file():
        return rustup
    raise NativeBuildError(
        "building the compiled classifier (native/) needs Rust 1.74+ with cargo on PATH or in "
        "~/.cargo/bin (https://rustup.rs)"
    )


def wheel(cache: Path | None = None, progress: bool = True) -> Path:
    """The wheel of ``native/`` for this Python, built unless the cache holds one of these sources."""
    root = (cache or default_paths().cache) / "native"
    folder = root / f"srs_native-{source_digest()}"
    found = sorted(folder.glob("*.whl"))
    if found:
        return found[0]
    cargo = _cargo()
    if progress:
        print(f"srs native: building the compiled classifier with {cargo} (~1 min the first time)", file=sys.stderr)
    t0 = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    # maturin (the venv's, locked) runs cargo; both are found on PATH.
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(cargo.parent), os.environ.get("PATH", "")]),
        "CARGO_TARGET_DIR": str(root / "target"),
    }
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--no-build-isolation", "--wheel-dir", tmp, str(SOURCE)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise NativeBuildError(f"building native/ failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        built = sorted(Path(tmp).glob("*.whl"))
        if len(built) != 1:
            raise NativeBuildError(f"building native/ gave {len(built)} wheels, expected one")
        # Renamed into place whole: a concurrent build never sees half a folder.
        staged = Path(tmp) / "done"
        staged.mkdir()
        shutil.move(str(built[0]), staged / built[0].name)
        try:
            os.rename(staged, folder)
        except OSError:
            if not folder.is_dir():  # not another build's: a real failure
                raise
    if progress:
        print(f"srs native: built in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    return next(folder.glob("*.whl"))


def install(cache: Path | None = None) -> Path:
    """Install the wheel (built if needed) into this interpreter's environment."""
    built = wheel(cache)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--force-reinstall", str(built)],
        check=True,
    )  # fmt: skip
    return built


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.native",
        description="Build the offline classifier's compiled step (native/, once per source content, cached in "
        "$SRS_CACHE_DIR/native) and install it into this Python's environment.",
    )
    parser.add_argument("--wheel-only", action="store_true", help="build (or find) the wheel and print its path")
    args = parser.parse_args(argv)
    try:
        path = wheel() if args.wheel_only else install()
    except NativeBuildError as exc:
        print(f"srs native: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
