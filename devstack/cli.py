"""Run a real Apache Kafka broker (KRaft) and a real Kubernetes control plane (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, kwok fake node) on loopback. The
first `up` fetches Kafka from Maven Central and builds Kubernetes from Go sources (~6-10 min
on 2 cores), cached in $SRS_CACHE_DIR (default ~/.cache/srs); later runs start in seconds.
State and logs go to $SRS_DEVSTACK_DIR (default ./.devstack)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from devstack import observability, stack
    from devstack.reporting import run_reporting
    from devstack.settings import default_paths

    def say(message: str) -> None:
        print(f"srs dev: {message}", file=sys.stderr)

    def work() -> int:
        if args.action == "up":
            stack.up()
            if args.observability:
                endpoints = observability.start(default_paths(), say, stack)
                say(
                    f"Prometheus {endpoints.prometheus_url} (srs alert rules loaded; it scrapes the agents and the "
                    "demo's operator)"
                )
                say(f"Jaeger {endpoints.traces_url} (OTLP in at {endpoints.otlp_endpoint})")
                say("exported in .devstack/env as SRS_PROMETHEUS_URL and SRS_TRACES_URL")
        elif args.action == "build":
            from devstack import build

            build.build(default_paths(), args.parts or list(build.PARTS), say)
        elif args.action == "down":
            stack.down()
        elif args.action == "reset":
            stack.reset()
        else:
            return 0 if stack.status() else 1
        return 0

    # RuntimeError covers ObservabilityUnavailable too.
    return run_reporting("srs dev", work, {stack.PrerequisiteMissing: 2, RuntimeError: 1})


def register(sub: Any) -> None:
    """Add ``srs dev`` to the ``srs`` parser's subcommands."""
    dev = sub.add_parser(
        "dev", help="the local stack: Kafka + a Kubernetes control plane on loopback", description=__doc__
    )
    dev.add_argument(
        "action",
        choices=["up", "down", "status", "reset", "build"],
        help="up: start what is not running, in place (same ports, same data); down: stop what up started, "
        "keeping the data; status: what runs where; reset: stop and delete the stack's data; build: build "
        "into the cache, without starting anything, what the stack, the tests and the kind cluster build on "
        "first use (safe beside a running `make test`: one process builds each part, the others wait for it)",
    )
    dev.add_argument(
        "--part",
        dest="parts",
        action="append",
        choices=["docker", "observability", "llm", "argocd", "stack", "keda", "kind"],
        help="with build: only this part (repeatable; default: all of them)",
    )
    dev.add_argument(
        "--observability",
        action="store_true",
        help="with up: also start Prometheus (Debian's package, srs's alert rules loaded, scraping the agents and "
        "the operator) and Jaeger (built from Go sources, first run only) on loopback; URLs in .devstack/env as "
        "SRS_PROMETHEUS_URL and SRS_TRACES_URL (docs/observability.md)",
    )
    dev.set_defaults(func=_run)
