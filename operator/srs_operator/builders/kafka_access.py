"""Where a SupportAgent becomes a Kafka identity and its ACLs: pure functions, no I/O.

When the operator manages Kafka users, each agent is the principal ``User:srs.<namespace>.<name>``
(its consumer group's name) with SCRAM credentials in the Secret ``<agent>-kafka``, and
exactly the ACLs its spec needs (:func:`plan_access`):

- READ on its input topic and on its consumer group ``srs.<namespace>.<name>``;
- WRITE on every topic it writes: a triage agent's routes, a specialist's output, the human
  queue, the dead-letter topic (and DESCRIBE_CONFIGS on the latter: the runtime reads its
  ``max.message.bytes`` to cut oversized dead letters);
- WRITE on the transactional ids ``srs.<namespace>.<name>-*`` (prefixed: the runtime's
  transactional.id is ``<group>-<pod name>``), which exactly-once delivery needs;
- IDEMPOTENT_WRITE on the cluster only when asked (brokers before Kafka 3.0; since KIP-679
  WRITE on a topic is enough for an idempotent producer).

READ and WRITE imply DESCRIBE in Kafka's authorizer, so no DESCRIBE rule is added. A topic
the agent's namespace may not claim under the operator's topic prefix rules gets no ACL at
all: it is reported (:attr:`AccessPlan.refused`), never granted.

Credentials (:func:`password_reason`): a new password is issued when the Secret is missing,
when the last issue did not finish (the Secret is written first, marked pending, and marked
done only once Kafka holds the password: a crash in between is healed by the next issue),
when Kafka has no SCRAM credentials for the user, or when a person asks for a rotation
(a new value of the agent's ``srs.dev/rotate-kafka-credentials`` annotation). The password
itself is made by the service and never passes through here except into the Secret's data.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from srs_contracts.agent_config import KafkaConfig
from srs_operator.builders.supportagent import (
    PASSWORD_KEY,
    SECRET_CA_KEY,
    USERNAME_KEY,
    agent_topics,
    consumer_group,
    credentials_secret_name,
    labels,
    owner_reference,
)
from srs_operator.builders.supportagent_status import Verdict
from srs_operator.builders.tickettopic import PrefixRule, name_violation
from srs_operator.models.kafkaaccess import CLUSTER_RESOURCE_NAME, AclEntry, Operation, Pattern, Resource, ScramUser
from srs_operator.models.supportagent import Reason, SecretVersion, SupportAgent

#: The agent's annotation whose new value asks for a new password (any value; e.g. a date).
ROTATE_ANNOTATION: Final = "srs.dev/rotate-kafka-credentials"
#: On the Secret: the rotation value its password answers.
ROTATION_ANNOTATION: Final = "srs.dev/kafka-credentials-rotation"
#: On the Secret: ``pending`` from writing a new password until Kafka holds it, then ``issued``.
STATE_ANNOTATION: Final = "srs.dev/kafka-credentials"
PENDING: Final = "pending"
ISSUED: Final = "issued"
#: On the Secret: the SHA-256 of the CA in its ``ca.crt`` ("" for none), so that a new CA (the
#: operator restarted with another ``kafka.agents.ca``) reaches the Secret without a new password:
#: the operator reads Secrets' metadata only, never their data.
CA_ANNOTATION: Final = "srs.dev/kafka-ca-sha256"
#: Iterations of the SCRAM credentials (Kafka's minimum, 4096, as Strimzi's User operator uses).
SCRAM_ITERATIONS: Final = 4096


def kafka_username(agent: SupportAgent) -> str:
    """The agent's Kafka user: its consumer group's name, unique per namespace and name."""
    return consumer_group(agent)


def username_for(namespace: str, name: str) -> str:
    """:func:`kafka_username` of the agent ``namespace/name`` (one that is gone, say)."""
    return f"srs.{namespace}.{name}"


def principal(username: str) -> str:
    return f"User:{username}"


def transactional_id_prefix(agent: SupportAgent) -> str:
    """What every transactional.id of the agent's pods starts with (``<group>-<pod name>``)."""
    return f"{consumer_group(agent)}-"


@dataclass(frozen=True)
class AccessPlan:
    """The ACLs an agent should have, and the topics it asked for but may not have."""

    username: str
    acls: frozenset[AclEntry]
    #: (topic, why not) for each topic outside the namespace's prefix rules.
    refused: tuple[tuple[str, str], ...] = ()


def plan_access(agent: SupportAgent, rules: Sequence[PrefixRule] = (), *, idempotent_write: bool = False) -> AccessPlan:
    """The agent's ACLs from its spec (:func:`~srs_operator.builders.supportagent.agent_topics`)."""
    topics = agent_topics(agent)
    writes = sorted(topics - {agent.spec.input_topic})
    acls: set[AclEntry] = set()
    refused: list[tuple[str, str]] = []

    def topic(name: str, *operations: Operation) -> None:
        why = name_violation(agent.namespace, name, rules)
        if why is not None:
            refused.append((name, why))
            return
        acls.update(AclEntry(Resource.TOPIC, name, Pattern.LITERAL, op) for op in operations)

    topic(agent.spec.input_topic, Operation.READ)
    dead_letter = _dead_letter_topic(agent)
    for name in writes:
        topic(name, Operation.WRITE, *((Operation.DESCRIBE_CONFIGS,) if name == dead_letter else ()))
    acls.add(AclEntry(Resource.GROUP, consumer_group(agent), Pattern.LITERAL, Operation.READ))
    acls.add(AclEntry(Resource.TRANSACTIONAL_ID, transactional_id_prefix(agent), Pattern.PREFIXED, Operation.WRITE))
    if idempotent_write:
        acls.add(AclEntry(Resource.CLUSTER, CLUSTER_RESOURCE_NAME, Pattern.LITERAL, Operation.IDEMPOTENT_WRITE))
    return AccessPlan(kafka_username(agent), frozenset(acls), tuple(sorted(refused)))


def _dead_letter_topic(agent: SupportAgent) -> str:
    """The agent's dead-letter topic, the runtime's default when unset (as :func:`agent_topics` counts it)."""
    return agent.spec.dead_letter_topic or str(KafkaConfig.model_fields["dead_letter_topic"].default)


@dataclass(frozen=True)
class AclDiff:
    """What to create and what to delete to go from the ACLs Kafka has to the planned ones."""

    create: tuple[AclEntry, ...] = ()
    delete: tuple[AclEntry, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.create or self.delete)


def diff_acls(desired: Iterable[AclEntry], actual: Iterable[AclEntry]) -> AclDiff:
    """Rules missing from ``actual`` are created; rules ``actual`` has beyond ``desired`` (a
    route the spec dropped, a hand-made grant to the agent's principal) are deleted."""
    want, have = set(desired), set(actual)
    return AclDiff(create=tuple(sorted(want - have)), delete=tuple(sorted(have - want)))


# -- credentials ----------------------------------------------------------------------------


def password_reason(
    agent: SupportAgent, secret: SecretVersion | None, user: ScramUser | None, mechanism: str
) -> str | None:
    """Why the agent needs a new password now (None: it does not). ``secret``: the metadata of
    ``<agent>-kafka``; ``user``: what Kafka describes of the agent's SCRAM user."""
    name = credentials_secret_name(agent.name)
    if secret is None:
        return f"Secret {name} does not exist"
    if secret.annotation(STATE_ANNOTATION) != ISSUED:
        return f"the last password written to Secret {name} may not have reached Kafka"
    asked = agent.annotations.get(ROTATE_ANNOTATION)
    if asked is not None and asked != secret.annotation(ROTATION_ANNOTATION):
        return f"a rotation was asked for ({ROTATE_ANNOTATION}: {asked})"
    if user is None or mechanism not in user.mechanisms:
        return f"Kafka has no {mechanism} credentials for user {kafka_username(agent)}"
    return None


def secret_conflict(agent: SupportAgent, secret: SecretVersion | None) -> str | None:
    """Why the agent's credentials Secret cannot be written: a Secret of that name that the
    agent does not own (never overwritten)."""
    if secret is None or secret.owner_uid == agent.uid:
        return None
    return (
        f"a Secret named {credentials_secret_name(agent.name)} already exists and is not owned by this "
        "SupportAgent: the operator keeps the agent's Kafka credentials there; rename the agent or remove that Secret"
    )


def build_credentials_secret(
    agent: SupportAgent, password: str, *, rotation: str | None, ca_pem: str | None, state: str
) -> dict[str, Any]:
    """The Secret ``<agent>-kafka`` (keys ``username``, ``password``, and ``ca.crt`` for KEDA
    when the agents use a private CA), owned by the agent so that it goes with it."""
    meta: dict[str, Any] = {
        "name": credentials_secret_name(agent.name),
        "namespace": agent.namespace,
        "labels": labels(agent),
        "ownerReferences": [owner_reference(agent)],
        "annotations": {STATE_ANNOTATION: state, ROTATION_ANNOTATION: rotation or "", CA_ANNOTATION: ca_digest(ca_pem)},
    }
    data = {USERNAME_KEY: kafka_username(agent), PASSWORD_KEY: password}
    if ca_pem is not None:
        data[SECRET_CA_KEY] = ca_pem
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def ca_digest(ca_pem: str | None) -> str:
    """What :data:`CA_ANNOTATION` says of a CA ("" for none)."""
    return "" if ca_pem is None else hashlib.sha256(ca_pem.encode()).hexdigest()


def ca_refresh(secret: SecretVersion | None, ca_pem: str | None) -> dict[str, Any] | None:
    """The merge patch that puts ``ca_pem`` into an issued credentials Secret holding another
    CA (or none), password untouched; None when it holds this one already."""
    if secret is None or secret.annotation(STATE_ANNOTATION) != ISSUED:
        return None  # a new password is on its way, with the CA
    digest = ca_digest(ca_pem)
    if secret.annotation(CA_ANNOTATION) == digest:
        return None
    value = None if ca_pem is None else base64.b64encode(ca_pem.encode()).decode()
    return {"metadata": {"annotations": {CA_ANNOTATION: digest}}, "data": {SECRET_CA_KEY: value}}


# -- status ---------------------------------------------------------------------------------


def access_verdict(plan: AccessPlan) -> Verdict:
    """``KafkaAccessReady`` once Kafka holds the user and exactly the planned ACLs."""
    if plan.refused:
        topics = ", ".join(t for t, _ in plan.refused)
        why = plan.refused[0][1]
        return Verdict.false(
            Reason.TOPICS_NOT_ALLOWED,
            f"no ACL for {topics}: {why}. The agent cannot use "
            + ("it" if len(plan.refused) == 1 else "them")
            + " (Kafka refuses with TOPIC_AUTHORIZATION_FAILED); its other topics are granted",
        )
    return Verdict.true(
        Reason.ACCESS_GRANTED,
        f"Kafka user {plan.username} (Secret {_secret_of(plan)}) may use exactly the agent's topics, "
        f"consumer group and transactional ids ({len(plan.acls)} ACLs)",
    )


def _secret_of(plan: AccessPlan) -> str:
    # srs.<namespace>.<name> (a namespace has no dot): the agent's name is the rest.
    return credentials_secret_name(plan.username.split(".", 2)[-1])


def external_verdict(secret: str) -> Verdict:
    """``KafkaAccessReady`` of an agent that brings its own identity (``spec.kafka.credentialsSecret``)."""
    return Verdict.true(
        Reason.CREDENTIALS_FROM_SECRET,
        f"the agent connects with the credentials in Secret {secret}; that user and its ACLs are managed outside srs",
    )
