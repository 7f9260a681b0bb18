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
        if args.broker and args.action != "broker":
            raise ValueError(f"srs dev {args.action} takes no arguments ({' '.join(args.broker)})")
        if args.action == "up":
            stack.up(brokers=args.brokers)
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
        elif args.action == "broker":
            return _broker(args.broker)
        else:
            return 0 if stack.status() else 1
        return 0

    # RuntimeError covers ObservabilityUnavailable too.
    return run_reporting("srs dev", work, {stack.PrerequisiteMissing: 2, RuntimeError: 1, ValueError: 2})


def _broker(words: list[str]) -> int:
    """``srs dev broker stop|kill|start ID``: one broker of a running stack."""
    from devstack import stack

    verbs = ("stop", "kill", "start")
    if len(words) != 2 or words[0] not in verbs or not words[1].isdigit():
        raise ValueError(f"usage: srs dev broker {{{','.join(verbs)}}} ID (a broker's node id, e.g. 2)")
    verb, node_id = words[0], int(words[1])
    if verb == "start":
        record = stack.start_broker(node_id)
        print(f"srs dev: broker {node_id} running (pid {record.pid}) and back in the cluster", file=sys.stderr)
    else:
        record = stack.stop_broker(node_id, kill=verb == "kill")
        how = "killed (SIGKILL)" if verb == "kill" else "stopped"
        print(f"srs dev: broker {node_id} {how}; `srs dev broker start {node_id}` starts it again", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    """Add ``srs dev`` to the ``srs`` parser's subcommands."""
    dev = sub.add_parser(
        "dev", help="the local stack: Kafka + a Kubernetes control plane on loopback", description=__doc__
    )
    dev.add_argument(
        "action",
        choices=["up", "down", "status", "reset", "build", "broker"],
        help="up: start what is not running, in place (same ports, same data); down: stop what up started, "
        "keeping the data; status: what runs where; reset: stop and delete the stack's data; build: build "
        "into the cache, without starting anything, what the stack, the tests and the kind cluster build on "
        "first use (safe beside a running `make test`: one process builds each part, the others wait for it); "
        "broker stop|kill|start ID: stop (orderly), kill (SIGKILL, as a crash) or start again one Kafka broker of "
        "the running stack, the others keep running",
    )
    dev.add_argument("broker", nargs="*", metavar="ARGS", help="with broker: stop|kill|start and the broker's node id")
    dev.add_argument(
        "--brokers",
        type=int,
        choices=[1, 3],
        help="with up: how many Kafka brokers a new stack gets (default 1; 3: a KRaft quorum of three, replication "
        "3 and min.insync.replicas 2); an existing stack keeps its count (`srs dev reset` first to change it)",
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
