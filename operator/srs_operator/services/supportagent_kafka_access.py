"""An agent's Kafka identity and least privilege: its SCRAM user, its Secret, its ACLs.

Used by the SupportAgent controller when the operator manages Kafka users. One reconcile:

1. :meth:`KafkaAccess.grant` — before any child is applied, so that a topic the new spec
   writes (a route just added) is writable before the agent's config names it: the plan
   (:func:`~srs_operator.builders.kafka_access.plan_access`) against what Kafka describes;
   a new password when one is needed (the Secret first, marked pending; then Kafka; then
   the Secret marked issued: a crash between leaves a pending Secret, and the next reconcile
   issues another password); the missing ACLs created. ACLs the spec no longer needs are
   returned, not deleted:
2. :meth:`KafkaAccess.revoke` — once the rollout that stopped using them is complete (an old
   pod still routing to a dropped topic must not turn its tickets into dead letters).
3. :meth:`KafkaAccess.remove` — when the agent is deleted: every ACL of its principal and
   its SCRAM user (the controller's finalizer waits for it, bounded).

Kafka is asked only when something may have changed: a reconcile whose plan and Secret are
the ones last verified, within half the re-check period, makes no admin request at all, and
a verified agent makes no Kafka write. The password is made with :mod:`secrets`, sent to
Kafka and to the Secret, and dropped; the Secret's write returns its metadata only.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from srs_operator.builders.kafka_access import (
    ISSUED,
    PENDING,
    ROTATE_ANNOTATION,
    ROTATION_ANNOTATION,
    SCRAM_ITERATIONS,
    STATE_ANNOTATION,
    AccessPlan,
    access_verdict,
    build_credentials_secret,
    ca_refresh,
    diff_acls,
    kafka_username,
    password_reason,
    plan_access,
    principal,
    secret_conflict,
    username_for,
)
from srs_operator.builders.supportagent import credentials_secret_name, kafka_ca
from srs_operator.builders.supportagent_status import Verdict
from srs_operator.builders.tickettopic import PrefixRule
from srs_operator.clients.kafka_access import AccessAdmin
from srs_operator.clients.kafka_admin import KafkaAdminError, KafkaAdminSettings, KafkaUnavailable
from srs_operator.clients.kube import METADATA, SECRETS, KubeClient
from srs_operator.clients.secrets import version_of
from srs_operator.models.kafkaaccess import AclEntry
from srs_operator.models.supportagent import Reason, SecretVersion, SupportAgent
from srs_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

#: Bytes of randomness in a password (``secrets.token_urlsafe``: 43 characters).
PASSWORD_BYTES: Final = 32

#: (namespace, agent name)
AgentKey = tuple[str, str]


@dataclass(frozen=True)
class Granted:
    """What :meth:`KafkaAccess.grant` found and did."""

    verdict: Verdict
    #: Kafka refused or could not be reached: no child may be applied (it might use a topic
    #: not yet granted); retried with backoff.
    failed: bool = False
    #: The credentials Secret as it now is (a new password gives it a new version).
    secret: SecretVersion | None = None
    #: ACLs Kafka holds that the spec no longer needs: revoked once the rollout is complete.
    stale: tuple[AclEntry, ...] = ()
    #: Why a new password was issued (None: none was).
    issued: str | None = None


@dataclass(frozen=True)
class _Verified:
    acls: frozenset[AclEntry]
    secret_version: str
    at: float


class KafkaAccess:
    """Keeps each agent's Kafka user and ACLs as its spec says."""

    def __init__(
        self,
        kube: KubeClient,
        admin: AccessAdmin,
        settings: OperatorSettings,
        rules: Sequence[PrefixRule] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self.admin = admin
        self._settings = settings
        self._rules = tuple(rules)
        self._clock = clock
        self._verified: dict[AgentKey, _Verified] = {}
        #: The credentials Secret as the operator last wrote it, and the versions its writes
        #: replaced: until the Secrets' watch shows it, a reconcile must not take the older
        #: (pending, or missing) Secret for the truth and issue yet another password.
        self._written: dict[AgentKey, tuple[frozenset[str | None], SecretVersion]] = {}

    @classmethod
    async def connect(cls, kube: KubeClient, settings: OperatorSettings, env: Mapping[str, str]) -> KafkaAccess:
        """An access manager on its own admin client (the operator's ``KAFKA_*`` identity)."""
        admin = AccessAdmin(KafkaAdminSettings.from_env(env))
        await admin.start()
        rules = [PrefixRule.parse(t) for t in settings.topic_prefix_rules]
        rules += [PrefixRule.parse(t) for t in env.get("SRS_TOPIC_PREFIX_RULES", "").split(";") if t.strip()]
        return cls(kube, admin, settings, rules)

    async def close(self) -> None:
        await self.admin.close()

    def forget(self, key: AgentKey) -> None:
        self._verified.pop(key, None)
        self._written.pop(key, None)

    def _current(self, key: AgentKey, seen: SecretVersion | None) -> SecretVersion | None:
        """The Secret as it now is: the operator's last write while the watch lags behind it."""
        written = self._written.get(key)
        if written is None:
            return seen
        if (seen.resource_version if seen is not None else None) in written[0]:
            return written[1]
        del self._written[key]
        return seen

    def plan(self, agent: SupportAgent) -> AccessPlan:
        return plan_access(agent, self._rules, idempotent_write=self._settings.agent_kafka.idempotent_write_acl)

    # -- grant ---------------------------------------------------------------------------

    async def grant(self, agent: SupportAgent, secret: SecretVersion | None) -> Granted:
        """Make the agent's user and every ACL its spec needs exist (stale ones are returned)."""
        key = (agent.namespace, agent.name)
        secret = self._current(key, secret)
        conflict = secret_conflict(agent, secret)
        if conflict is not None:
            return Granted(Verdict.false(Reason.NAME_CONFLICT, conflict), failed=True, secret=secret)
        plan = self.plan(agent)
        verified = self._verified.get(key)
        recheck = self._settings.resync_seconds / 2
        if (
            verified is not None
            and secret is not None
            and verified.acls == plan.acls
            and verified.secret_version == secret.resource_version
            and self._clock() - verified.at < recheck
            and agent.annotations.get(ROTATE_ANNOTATION) in (None, secret.annotation(ROTATION_ANNOTATION))
        ):
            return Granted(access_verdict(plan), secret=secret)
        self._verified.pop(key, None)
        mechanism = self._settings.agent_kafka.sasl_mechanism
        try:
            user, actual = await asyncio.gather(
                self.admin.scram_user(plan.username), self.admin.acls(principal(plan.username))
            )
            reason = password_reason(agent, secret, user, mechanism)
            if reason is not None:
                log.info("issuing a new Kafka password for SupportAgent %s/%s: %s", *key, reason)
                before = secret.resource_version if secret is not None else None
                replaced, secret = await self._issue(agent, plan.username)
                self._written[key] = (frozenset({before, *replaced}), secret)
            elif (refresh := ca_refresh(secret, kafka_ca(self._settings))) is not None:
                assert secret is not None  # ca_refresh answers None without one
                before = secret.resource_version
                written = await self._kube.merge_patch(
                    SECRETS, agent.namespace, credentials_secret_name(agent.name), refresh, accept=METADATA
                )
                secret = version_of(written.get("metadata") or {})
                self._written[key] = (frozenset({before}), secret)
                log.info(
                    "the Kafka CA in Secret %s/%s is now the operator's (kafka.agents.ca); password unchanged",
                    agent.namespace,
                    credentials_secret_name(agent.name),
                )
            diff = diff_acls(plan.acls, actual)
            if diff.create:
                await self.admin.create_acls(principal(plan.username), diff.create)
                log.info(
                    "granted %s to SupportAgent %s/%s: %s",
                    principal(plan.username),
                    *key,
                    "; ".join(str(e) for e in diff.create),
                )
        except KafkaUnavailable as e:
            return Granted(Verdict.false(Reason.KAFKA_UNAVAILABLE, f"{e}; retrying"), failed=True, secret=secret)
        except KafkaAdminError as e:
            message = f"Kafka refused: {e}" + _hint(e)
            return Granted(Verdict.false(Reason.KAFKA_REFUSED, message), failed=True, secret=secret)
        if not diff.delete and secret is not None:
            self._verified[key] = _Verified(plan.acls, secret.resource_version, self._clock())
        return Granted(access_verdict(plan), secret=secret, stale=diff.delete, issued=reason)

    async def _issue(self, agent: SupportAgent, username: str) -> tuple[frozenset[str | None], SecretVersion]:
        """A new password: in the Secret (pending), in Kafka, then the Secret marked issued.
        Returns the versions written on the way (the pending one) and the Secret as it now is."""
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        manifest = build_credentials_secret(
            agent,
            password,
            rotation=agent.annotations.get(ROTATE_ANNOTATION),
            ca_pem=kafka_ca(self._settings),
            state=PENDING,
        )
        pending = await self._kube.apply(manifest, accept=METADATA)
        await self.admin.set_password(username, password, self._settings.agent_kafka.sasl_mechanism, SCRAM_ITERATIONS)
        del password, manifest
        patch = {"metadata": {"annotations": {STATE_ANNOTATION: ISSUED}}}
        written = await self._kube.merge_patch(
            SECRETS, agent.namespace, credentials_secret_name(agent.name), patch, accept=METADATA
        )
        return frozenset({version_of(pending.get("metadata") or {}).resource_version}), version_of(
            written.get("metadata") or {}
        )

    # -- revoke and remove ---------------------------------------------------------------

    async def revoke(self, agent: SupportAgent, stale: Sequence[AclEntry]) -> None:
        """Delete ACLs the spec no longer needs (the rollout that stopped using them is complete)."""
        username = kafka_username(agent)
        await self.admin.delete_acls(principal(username), stale)
        log.info(
            "revoked from %s (SupportAgent %s/%s): %s",
            principal(username),
            agent.namespace,
            agent.name,
            "; ".join(str(e) for e in stale),
        )

    async def remove(self, namespace: str, name: str) -> None:
        """Every ACL of the agent's principal, and its SCRAM user (none left is fine)."""
        self.forget((namespace, name))
        username = username_for(namespace, name)
        await self.admin.delete_all_acls(principal(username))
        await self.admin.delete_user(username, self._settings.agent_kafka.sasl_mechanism)
        log.info("removed the Kafka user %s and its ACLs (SupportAgent %s/%s deleted)", username, namespace, name)


def _hint(error: KafkaAdminError) -> str:
    """What to do about a refusal a person can fix."""
    if error.code in ("CLUSTER_AUTHORIZATION_FAILED", "_CLUSTER_AUTHORIZATION_FAILED"):
        return (
            " — the operator's own Kafka principal needs ALTER and DESCRIBE on the Cluster resource "
            "(ACLs and SCRAM users; docs/kafka-security.md)"
        )
    if error.code == "SECURITY_DISABLED":
        return (
            " — the brokers have no authorizer: set authorizer.class.name (StandardAuthorizer), "
            "or turn user management off"
        )
    return ""
