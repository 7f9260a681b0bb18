"""The ``srs`` command line: one console script, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _dev(args: argparse.Namespace) -> int:
    from devstack import stack

    try:
        if args.action == "up":
            stack.up()
        elif args.action == "down":
            stack.down()
        else:
            return 0 if stack.status() else 1
    except stack.PrerequisiteMissing as e:
        print(f"srs dev: {e}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser(
        "dev",
        help="the local stack: Kafka + a Kubernetes control plane on loopback",
        description=(
            "Run a real Apache Kafka broker (KRaft) and a real Kubernetes control plane (etcd, "
            "kube-apiserver, kube-controller-manager, kube-scheduler, kwok fake node) on loopback. "
            "The first `up` fetches Kafka from Maven Central and builds Kubernetes from Go sources "
            "(~20-30 min on 2 cores), cached in $SRS_CACHE_DIR (default ~/.cache/srs); later runs "
            "start in well under a minute. State and logs go to $SRS_DEVSTACK_DIR (default ./.devstack)."
        ),
    )
    dev.add_argument(
        "action",
        choices=["up", "down", "status"],
        help="up: start (no-op if running); down: stop what up started; status: what runs where",
    )
    dev.set_defaults(func=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``srs`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
