"""Build, ahead of time, everything the local stack, the tests and the kind cluster would
otherwise build on first use: the Kafka jars, the control plane, Prometheus and Jaeger,
llama-server and its model, Argo CD, KEDA, the Docker engine with kind's binaries and images.

Each part is built under its cache lock (devstack/locks.py), so ``srs dev build`` can run
beside ``make test``: CI starts it in the background at idle CPU priority, where it fills
the minutes the tests spend waiting on the network and on Kafka, and a test that needs a
part either finds it built or waits for the build under way instead of starting another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from devstack import argocd, docker_engine, images, kafka, keda, kind, kube, llm, observability, settings
from devstack.settings import Paths

Progress = Callable[[str], None]


def _docker(paths: Paths, progress: Progress) -> None:
    # Network and dpkg bound: first, so they overlap with what keeps the CPU busy.
    docker_engine.ensure_engine(paths.cache, settings.kind_state() / "logs", progress)
    images.ensure_rootfs_all(list(images.ROOTFS), progress)


def _observability(paths: Paths, progress: Progress) -> None:
    observability.ensure_prometheus(progress)
    observability.ensure_jaeger(paths, progress)


def _llm(paths: Paths, progress: Progress) -> None:
    llm.ensure_model(paths, progress)
    llm.ensure_server(paths, progress)


def _argocd(paths: Paths, progress: Progress) -> None:
    argocd.ensure_redis(progress)
    argocd.ensure_binary(paths, progress)


def _stack(paths: Paths, progress: Progress) -> None:
    kafka.ensure_jars(paths, progress)
    kube.ensure_binaries(paths, progress)


def _keda(paths: Paths, progress: Progress) -> None:
    keda.ensure_binaries(paths, progress)


def _kind(paths: Paths, progress: Progress) -> None:
    kind.build(paths, settings.kind_state() / "logs", llm=True)


#: The parts, in the order CI wants them: what waits on the network first, then what the
#: tests need earliest that ``make test`` does not build itself before it (the stack is
#: built by ``srs dev up`` at the start of the tests; here it comes late, usually found built).
PARTS: dict[str, Callable[[Paths, Progress], None]] = {
    "docker": _docker,
    "observability": _observability,
    "llm": _llm,
    "argocd": _argocd,
    "stack": _stack,
    "keda": _keda,
    "kind": _kind,
}


def build(paths: Paths, parts: Sequence[str], progress: Progress) -> None:
    """Build the named parts that are missing, in PARTS' order, saying how long each took.

    A part that fails does not stop the others (each is needed by a different step, which
    would build it itself and report the failure there); the failures are raised at the end.
    """
    t0 = time.monotonic()
    failed: list[str] = []
    for name in (p for p in PARTS if p in parts):
        started = time.monotonic()
        progress(f"{name}: building what is missing")
        try:
            PARTS[name](paths, progress)
        except Exception as e:  # noqa: BLE001 - reported, and raised at the end
            failed.append(name)
            progress(f"{name}: failed: {e}")
            continue
        progress(f"{name}: ready ({time.monotonic() - started:.0f}s)")
    if failed:
        raise RuntimeError(f"building {', '.join(failed)} failed (the output above says why)")
    progress(f"built {', '.join(p for p in PARTS if p in parts)} in {(time.monotonic() - t0) / 60:.1f} min")
