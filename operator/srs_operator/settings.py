"""Operator settings: command-line flags with environment-variable defaults.

Everything a platform engineer may want to set per installation (the Helm chart sets the
environment) and nothing per agent (that belongs in the SupportAgent spec).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
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


#: Security protocols a Kafka client may use (librdkafka's ``security.protocol``).
SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: SASL mechanisms whose users the operator can create (SCRAM credentials through the Admin API).
SCRAM_MECHANISMS: Final = ("SCRAM-SHA-512", "SCRAM-SHA-256")


def _flag(value: str | None) -> bool | None:
    """An on/off environment value (``1/true/yes/on``, ``0/false/no/off``); None when unset or empty."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, not {value!r}")


@dataclass(frozen=True)
class AgentKafkaSettings:
    """How the agents connect to Kafka, and whether the operator gives each its own Kafka user.

    ``manage_users``: the operator creates a SCRAM user per SupportAgent (credentials in the
    Secret ``<agent>-kafka``) and the ACLs its spec needs. It defaults to on exactly when the
    agents' listener authenticates with SCRAM (``SASL_SSL``/``SASL_PLAINTEXT``); on a plaintext
    listener there is nobody to authenticate, so it is off. Off, an agent may bring its own
    identity (``spec.kafka.credentialsSecret``: MSK, Strimzi's KafkaUser)."""

    #: librdkafka's ``security.protocol`` of the agents (``KAFKA_SECURITY_PROTOCOL`` in their pods).
    security_protocol: str = "PLAINTEXT"
    #: ``sasl.mechanism`` of the agents when the protocol is ``SASL_*``.
    sasl_mechanism: str = "SCRAM-SHA-512"
    #: A PEM file with the CA that signed the brokers' certificates, given to every agent
    #: (None: the system's trust store, as for MSK); read by :meth:`loaded` into ``ca_pem``.
    ca_file: str | None = None
    ca_pem: str | None = field(default=None, repr=False)
    #: None: on exactly when the listener authenticates with SCRAM (:attr:`users_managed`).
    manage_users: bool | None = None
    #: Also grant IDEMPOTENT_WRITE on the cluster: only brokers before Kafka 3.0 need it (KIP-679).
    idempotent_write_acl: bool = False
    #: An agent being deleted waits this long for an unreachable Kafka to remove its user and
    #: ACLs before it is released anyway (with a Warning Event): never a stuck namespace.
    delete_timeout: float = 90.0

    def loaded(self) -> AgentKafkaSettings:
        """These settings checked, with the CA file read (``ValueError`` says what is wrong)."""
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"agent Kafka security protocol {self.security_protocol!r} is none of {', '.join(SECURITY_PROTOCOLS)}"
            )
        if self.manage_users and not (self.sasl and self.sasl_mechanism in SCRAM_MECHANISMS):
            raise ValueError(
                "managing Kafka users needs agents that authenticate with SCRAM: set the agents' security protocol "
                f"to SASL_SSL (or SASL_PLAINTEXT) and the SASL mechanism to {' or '.join(SCRAM_MECHANISMS)} "
                f"(now {self.security_protocol}" + (f", {self.sasl_mechanism})" if self.sasl else ")")
            )
        if self.ca_file and self.ca_pem is None:
            return replace(self, ca_pem=read_ca(self.ca_file))
        return self

    @property
    def sasl(self) -> bool:
        """Whether the agents authenticate (``SASL_SSL``/``SASL_PLAINTEXT``)."""
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def users_managed(self) -> bool:
        """Whether the operator creates a Kafka user and ACLs for each agent."""
        if self.manage_users is not None:
            return self.manage_users
        return self.sasl and self.sasl_mechanism in SCRAM_MECHANISMS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgentKafkaSettings:
        """``SRS_AGENT_KAFKA_SECURITY_PROTOCOL``, ``SRS_AGENT_KAFKA_SASL_MECHANISM``,
        ``SRS_AGENT_KAFKA_CA_FILE`` (a PEM file), ``SRS_KAFKA_MANAGE_USERS`` (true/false; unset:
        on with SCRAM), ``SRS_KAFKA_ACL_IDEMPOTENT_WRITE``, ``SRS_KAFKA_ACCESS_DELETE_TIMEOUT_SECONDS``."""
        return cls(
            security_protocol=(env.get("SRS_AGENT_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper(),
            sasl_mechanism=(env.get("SRS_AGENT_KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512").upper(),
            ca_file=env.get("SRS_AGENT_KAFKA_CA_FILE") or None,
            manage_users=_flag(env.get("SRS_KAFKA_MANAGE_USERS")),
            idempotent_write_acl=bool(_flag(env.get("SRS_KAFKA_ACL_IDEMPOTENT_WRITE"))),
            delete_timeout=float(env.get("SRS_KAFKA_ACCESS_DELETE_TIMEOUT_SECONDS") or cls.delete_timeout),
        )


def read_ca(path: str) -> str:
    """The PEM text of a CA file (``ValueError`` when it holds no certificate)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(f"cannot read the agents' Kafka CA file {path}: {e.strerror or e}") from e
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return text


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
    #: What the operator may not read yet or the cluster does not serve yet (a namespace's
    #: Secrets before their RoleBinding, KEDA's kinds before their CRDs) is looked at again
    #: this often: no watch announces either.
    recheck_seconds: float = 30.0
    #: Concurrent SupportAgent reconciles.
    workers: int = 16
    #: Liveness fails when a watched object waits longer than this for its handler.
    watch_stall_seconds: float = 120.0
    #: ``NAMESPACE_GLOB=PREFIX[,PREFIX]`` rules: which topic names each namespace may claim.
    topic_prefix_rules: tuple[str, ...] = ()
    #: OpenTelemetry settings (``OTEL_*``, from the operator's environment) passed on to every
    #: agent pod; ``OTEL_SERVICE_NAME`` stays the operator's (agents name themselves).
    agent_otel_env: tuple[tuple[str, str], ...] = ()
    #: How agents connect to Kafka (protocol, SASL, CA), and whether each gets its own Kafka user.
    agent_kafka: AgentKafkaSettings = AgentKafkaSettings()

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
            recheck_seconds=float(env.get("SRS_OPERATOR_RECHECK_SECONDS", "30")),
            workers=int(env.get("SRS_OPERATOR_WORKERS", "16")),
            watch_stall_seconds=float(env.get("SRS_OPERATOR_WATCH_STALL_SECONDS", "120")),
            agent_otel_env=tuple(
                sorted((k, v) for k, v in env.items() if k.startswith("OTEL_") and k != "OTEL_SERVICE_NAME")
            ),
            agent_kafka=AgentKafkaSettings.from_env(env),
        )
