"""``srs dev``: the local stack's subcommand."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from devstack import observability, stack
    from devstack.settings import default_paths

    try:
        if args.action == "up":
            stack.up()
            if args.observability:
                endpoints = observability.start(
                    default_paths(), lambda m: print(f"srs dev: {m}", file=sys.stderr), stack
                )
                print(
                    f"srs dev: Prometheus {endpoints.prometheus_url} (srs alert rules loaded; it scrapes the agents "
                    f"and the demo's operator)\nsrs dev: Jaeger {endpoints.traces_url} (OTLP in at "
                    f"{endpoints.otlp_endpoint})\nsrs dev: exported in .devstack/env as SRS_PROMETHEUS_URL and "
                    "SRS_TRACES_URL",
                    file=sys.stderr,
                )
        elif args.action == "down":
            stack.down()
        elif args.action == "reset":
            stack.reset()
        else:
            return 0 if stack.status() else 1
    except stack.PrerequisiteMissing as e:
        print(f"srs dev: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # ObservabilityUnavailable too
        print(f"srs dev: {e}", file=sys.stderr)
        return 1
    return 0


def register(sub: Any) -> None:
    """Add ``srs dev`` to the ``srs`` parser's subcommands."""
    dev = sub.add_parser(
        "dev",
        help="the local stack: Kafka + a Kubernetes control plane on loopback",
        description=(
            "Run a real Apache Kafka broker (KRaft) and a real Kubernetes control plane (etcd, "
            "kube-apiserver, kube-controller-manager, kube-scheduler, kwok fake node) on loopback. "
            "The first `up` fetches Kafka from Maven Central and builds Kubernetes from Go sources "
            "(~6-10 min on 2 cores), cached in $SRS_CACHE_DIR (default ~/.cache/srs); later runs "
            "start in seconds. State and logs go to $SRS_DEVSTACK_DIR (default ./.devstack)."
        ),
    )
    dev.add_argument(
        "action",
        choices=["up", "down", "status", "reset"],
        help="up: start what is not running, in place (same ports, same data); down: stop what up started, "
        "keeping the data; status: what runs where; reset: stop and delete the stack's data",
    )
    dev.add_argument(
        "--observability",
        action="store_true",
        help="with up: also start Prometheus (Debian's package, srs's alert rules loaded, scraping the agents and "
        "the operator) and Jaeger (built from Go sources, first run only) on loopback; URLs in .devstack/env as "
        "SRS_PROMETHEUS_URL and SRS_TRACES_URL (docs/observability.md)",
    )
    dev.set_defaults(func=_run)
