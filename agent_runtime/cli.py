"""Run one agent: read the runtime config (as the operator renders it), consume its input topic,
handle each record with the agent's role and model, produce the results. Kafka client settings
come from KAFKA_* environment variables (KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL,
...). SIGTERM drains in-flight work, commits and exits 0."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError


def _run(args: argparse.Namespace) -> int:
    from agent_runtime import app
    from srs_contracts.agent_config import AgentConfig

    try:
        config = AgentConfig.load(args.config)
    except (OSError, ValidationError, ValueError) as e:
        print(f"srs agent: invalid config {args.config}: {e}", file=sys.stderr)
        return 2
    try:
        factory = app.load_handler_factory(args.handler)
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        print(f"srs agent: cannot load handler factory {args.handler}: {e}", file=sys.stderr)
        return 2
    try:
        return app.run(config, handler_factory=factory, grace_period_s=args.grace_period, log_level=args.log_level)
    except ValueError as e:
        print(f"srs agent: {e}", file=sys.stderr)
        return 2


def register(sub: Any) -> None:
    """Add ``srs agent`` to the ``srs`` parser's subcommands."""
    from agent_runtime.app import DEFAULT_HANDLER_FACTORY

    agent = sub.add_parser("agent", help="run one agent process (consume, handle, produce)", description=__doc__)
    agent.add_argument("--config", required=True, metavar="FILE", help="the runtime config (agent.yaml)")
    agent.add_argument(
        "--grace-period",
        type=float,
        default=None,
        metavar="SECONDS",
        help="shutdown grace period (default: $SRS_SHUTDOWN_GRACE_SECONDS or 25)",
    )
    agent.add_argument(
        "--handler",
        default=DEFAULT_HANDLER_FACTORY,
        metavar="MODULE:FACTORY",
        help=f"callable building the handler from the config (default: {DEFAULT_HANDLER_FACTORY})",
    )
    agent.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    agent.set_defaults(func=_run)
