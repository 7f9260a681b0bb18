"""One builder per cached artefact, however many srs processes want it at once.

CI starts ``srs dev build`` in the background while the tests' own ``srs dev up`` and
``srs kind up`` run; a developer may run ``make up`` in two terminals. Every artefact that
takes minutes to make (a Go build, llama-server, the Debian root filesystems, the kind
images) is made under an exclusive lock named after it: the first process builds, the
others say what they wait for, wait, and then find it built. The locks are ``flock(2)``
locks on files under the cache, so the kernel releases them when a builder dies.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

Progress = Callable[[str], None]

#: Where the locks of what is one per machine live (apt, the Docker engine and its images),
#: whatever cache a process uses: ``/run/lock/.locks/srs-*.lock``.
MACHINE_LOCKS = Path("/run/lock") if os.access("/run/lock", os.W_OK) else Path("/tmp")  # noqa: S108 - a lock file


@contextmanager
def exclusive(folder: Path, name: str, what: str, progress: Progress) -> Iterator[None]:
    """Hold the lock ``folder/.locks/NAME.lock`` for the block; if another process holds
    it, say so (naming ``what`` and that process) and wait for it."""
    locks = folder / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            progress(f"waiting for {what}: srs process {holder} is making it")
            t0 = time.monotonic()
            fcntl.flock(f, fcntl.LOCK_EX)
            progress(f"{what}: ready after waiting {time.monotonic() - t0:.0f}s")
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
