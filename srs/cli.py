"""The ``srs`` command line: one console script, one subcommand per job.

Each part of the project registers its own subcommands (``register(subparsers)`` in its
``cli`` module); this module only assembles them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from agent_runtime import cli as agent_runtime_cli
from agent_runtime import triage_cli
from devstack import cli as devstack_cli
from devstack import kind_cli, llm_cli
from gitops.argocd import healthchecks as argocd_healthchecks
from srs import customers, demo, observability, publish, tail
from srs_operator import cli as operator_cli
from srs_training import cli as offline_cli

REGISTRARS = [
    devstack_cli.register,
    kind_cli.register,
    llm_cli.register,
    publish.register,
    customers.register,
    tail.register,
    demo.register,
    operator_cli.register,
    agent_runtime_cli.register,
    triage_cli.register,
    offline_cli.register,
    argocd_healthchecks.register,
    observability.register,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srs", description="Support Resolution System: AI support agents on Kubernetes and Kafka."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``srs`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at exit
    except BrokenPipeError:
        # The reader went away (`srs dev status | head`): stop quietly, as Unix tools do.
        # Point stdout at /dev/null so the interpreter's final flush has nowhere to fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
