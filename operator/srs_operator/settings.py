"""Operator settings: command-line flags with environment-variable defaults.

Everything a platform engineer may want to set per installation (the Helm chart sets the
environment) and nothing per agent (that belongs in the SupportAgent spec).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

#: Field manager of every server-side apply and status patch the operator makes.
FIELD_MANAGER: Final = "srs-operator"
#: Value of ``app.kubernetes.io/managed-by`` on every child object.
MANAGED_BY: Final = "srs-operator"
#: The controllers' finalizer (a TicketTopic with ``deletionPolicy: Delete`` carries it).
FINALIZER: Final = "srs.dev/finalizer"
#: kopf's own finalizer: no handler asks kopf for one, and kopf strips its finalizer from
#: objects no handler needs it for, so it must not be :data:`FINALIZER`.
KOPF_FINALIZER: Final = "kopf.srs.dev/unused"
#: kopf's annotation names live under the project's API group.
ANNOTATION_PREFIX: Final = "srs.dev"
PEERING_NAME: Final = "srs-operator"
DEFAULT_AGENT_IMAGE: Final = "srs:0.1.0"
#: Where ``srs operator`` puts its :class:`OperatorSettings` in kopf's memo, for the
#: startup handlers to read.
SETTINGS_MEMO_KEY: Final = "settings"


@dataclass(frozen=True)
class OperatorSettings:
    """What ``srs operator`` was started with."""

    agent_image: str = DEFAULT_AGENT_IMAGE
    #: Rendered into each agent's config; None leaves it to the pod's KAFKA_BOOTSTRAP_SERVERS.
    agent_kafka_bootstrap_servers: str | None = None
    metrics_port: int = 9090
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
    #: Join peering ``srs-operator`` (two replicas: one active); False runs standalone.
    peering: bool = True
    priority: int = 0
    #: Namespaces to watch; empty means the whole cluster.
    namespaces: tuple[str, ...] = ()
    #: Every agent is re-checked this often even when nothing announced a change.
    resync_seconds: float = 300.0
    #: Concurrent SupportAgent reconciles.
    workers: int = 16
    #: Liveness fails when a watched object waits longer than this for its handler.
    watch_stall_seconds: float = 120.0
    #: ``NAMESPACE_GLOB=PREFIX[,PREFIX]`` rules: which topic names each namespace may claim.
    topic_prefix_rules: tuple[str, ...] = ()
    #: OpenTelemetry settings (``OTEL_*``, from the operator's environment) passed on to every
    #: agent pod; ``OTEL_SERVICE_NAME`` stays the operator's (agents name themselves).
    agent_otel_env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls) -> OperatorSettings:
        """Defaults for the flags, from ``SRS_*`` environment variables."""
        env = os.environ
        return cls(
            agent_image=env.get("SRS_AGENT_IMAGE") or DEFAULT_AGENT_IMAGE,
            agent_kafka_bootstrap_servers=env.get("SRS_AGENT_KAFKA_BOOTSTRAP_SERVERS")
            or env.get("KAFKA_BOOTSTRAP_SERVERS")
            or None,
            metrics_port=int(env.get("SRS_OPERATOR_METRICS_PORT", "9090")),
            liveness_endpoint=env.get("SRS_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz") or None,
            peering=env.get("SRS_OPERATOR_STANDALONE", "").lower() not in ("1", "true", "yes"),
            resync_seconds=float(env.get("SRS_OPERATOR_RESYNC_SECONDS", "300")),
            workers=int(env.get("SRS_OPERATOR_WORKERS", "16")),
            watch_stall_seconds=float(env.get("SRS_OPERATOR_WATCH_STALL_SECONDS", "120")),
            agent_otel_env=tuple(
                sorted((k, v) for k, v in env.items() if k.startswith("OTEL_") and k != "OTEL_SERVICE_NAME")
            ),
        )
