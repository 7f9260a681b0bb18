"""kcat — Debian's, a Kafka client srs did not write — made able to log in to Kafka 4.

Debian 12's kcat 1.7.1 links librdkafka 2.0.2, whose SCRAM client-final-message repeats the
client nonce (librdkafka#4895, fixed in 2.6.1); Kafka 4 compares nonces strictly, as RFC 5802
says, and answers "invalid credentials" to a right password. The confluent-kafka wheel srs
already depends on bundles a librdkafka past the fix: ``.devstack/bin/kcat`` runs Debian's
kcat on it (``LD_LIBRARY_PATH``: librdkafka keeps its ABI within a major version, and kcat
asks for ``librdkafka.so.1`` by that name). ``.devstack/env`` puts the folder first on
``PATH``, so ``kcat -F $KAFKA_CLIENT_CONFIG -L`` works as written; PLAINTEXT works the same.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from devstack import apt
from devstack.settings import Paths


def bin_dir(paths: Paths) -> Path:
    """The folder ``.devstack/env`` puts first on ``PATH`` (the kcat wrapper)."""
    return paths.state / "bin"


def _bundled_librdkafka() -> Path | None:
    """The librdkafka the confluent-kafka wheel carries (None: it uses the system's)."""
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so*"))
    return found[0] if found else None


def _real_kcat(paths: Paths) -> str | None:
    """Debian's kcat (never the wrapper itself, which may be first on PATH)."""
    own = str(bin_dir(paths))
    search = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep) if d.rstrip("/") != own)
    return shutil.which("kcat", path=search)


def write_wrapper(paths: Paths) -> Path | None:
    """Write ``.devstack/bin/kcat`` when kcat is installed; returns it (None: no kcat)."""
    real = _real_kcat(paths)
    if real is None:
        return None
    folder = bin_dir(paths)
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "kcat"
    library = _bundled_librdkafka()
    if library is None:
        body = f'exec {real} "$@"\n'
    else:
        libdir = folder / "lib"
        libdir.mkdir(exist_ok=True)
        # Replaced atomically: several srs processes may write it at once (test sessions' `up`).
        staging = libdir / f".librdkafka.so.1.{os.getpid()}"
        staging.unlink(missing_ok=True)
        staging.symlink_to(library)
        staging.replace(libdir / "librdkafka.so.1")
        body = f'LD_LIBRARY_PATH="{libdir}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" exec {real} "$@"\n'
    staging = folder / f".kcat.{os.getpid()}"
    staging.write_text(
        "#!/bin/sh\n# Written by `srs dev up`: Debian's kcat on the librdkafka of the confluent-kafka wheel,\n"
        "# which logs in to Kafka 4 with SCRAM (devstack/kcat.py says why).\n" + body
    )
    staging.chmod(0o755)
    staging.replace(wrapper)
    return wrapper


def command(paths: Paths, progress: Callable[[str], None]) -> str:
    """The kcat to run (the wrapper), installing Debian's kcat first when it is missing."""
    if _real_kcat(paths) is None:
        apt.install(["kcat"], progress)
    wrapper = write_wrapper(paths)
    if wrapper is None:
        raise RuntimeError("kcat is not installed (apt-get install kcat)")
    return str(wrapper)
