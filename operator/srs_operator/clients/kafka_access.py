"""The operator's Kafka admin calls for agents' identities: SCRAM users and ACLs.

One ``AdminClient`` for the SupportAgent controller (created at start-up when the operator
manages Kafka users, closed at clean-up), with the operator's own identity (the ``KAFKA_*``
environment, as :mod:`~srs_operator.clients.kafka_admin`). Every call goes through a
:class:`~srs_operator.clients.kafka_batching.Coalescer`, so a thousand agents reconciled at
once cost a few admin requests, not thousands:

- ACLs are described once per batch window for *all* principals (DescribeAcls takes one
  filter), and each caller keeps its own principal's bindings;
- creations, deletions, SCRAM describes and SCRAM alterations of many agents leave as one
  request each.

The operator's principal needs ALTER and DESCRIBE on the Cluster resource (ACL management,
AlterUserScramCredentials, DescribeUserScramCredentials); no other principal should have them.
Passwords go to Kafka and nowhere else: no log line, no error message carries one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialsDescription,
    UserScramCredentialUpsertion,
)

from srs_operator.clients.kafka_admin import (
    KafkaAdminError,
    KafkaAdminSettings,
    KafkaUnavailable,
    PolledAdmin,
    is_transient,
)
from srs_operator.clients.kafka_batching import BatchLimits, BatchStats, Coalescer
from srs_operator.models.kafkaaccess import AclEntry, Operation, Pattern, Resource, ScramUser

log = logging.getLogger(__name__)

#: Every ACL of the cluster (DescribeAcls takes one filter; the callers split the answer).
_ALL: Final = "*"
#: A filter's "any name / principal / host" (the client's stubs type these as str).
_ANY: Final[Any] = None
_ANY_ACL: Final = AclBindingFilter(
    ResourceType.ANY, _ANY, ResourcePatternType.ANY, _ANY, _ANY, AclOperation.ANY, AclPermissionType.ANY
)


def _name(value: Any) -> str:
    """An enum attribute of a binding by its name (the client's stubs allow str and int too)."""
    return str(getattr(value, "name", value))


def _binding(principal: str, entry: AclEntry) -> AclBinding:
    return AclBinding(
        ResourceType[entry.resource.value],
        entry.name,
        ResourcePatternType[entry.pattern.value],
        principal,
        "*",
        AclOperation[entry.operation.value],
        AclPermissionType.ALLOW,
    )


def _filter(principal: str, entry: AclEntry) -> AclBindingFilter:
    """A filter matching exactly one binding (delete_acls takes filters)."""
    return AclBindingFilter(
        ResourceType[entry.resource.value],
        entry.name,
        ResourcePatternType[entry.pattern.value],
        principal,
        "*",
        AclOperation[entry.operation.value],
        AclPermissionType.ALLOW,
    )


def _entry(binding: AclBinding) -> AclEntry | None:
    """The binding as an :class:`AclEntry`; None for what the operator never grants (a DENY,
    a host other than ``*``, an operation or resource it does not use): those stay untouched."""
    try:
        entry = AclEntry(
            Resource(_name(binding.restype)),
            binding.name,
            Pattern(_name(binding.resource_pattern_type)),
            Operation(_name(binding.operation)),
        )
    except ValueError:
        return None
    if binding.permission_type != AclPermissionType.ALLOW or binding.host != "*":
        return None
    return entry


def _scram_mechanism(name: str) -> ScramMechanism:
    return ScramMechanism.SCRAM_SHA_256 if name == "SCRAM-SHA-256" else ScramMechanism.SCRAM_SHA_512


def _mechanism_name(mechanism: ScramMechanism) -> str:
    return mechanism.name.replace("_", "-")


def _kafka_error(exc: BaseException) -> KafkaError | None:
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return err if isinstance(err, KafkaError) else None


def _error(exc: BaseException, action: str) -> Exception:
    """:class:`KafkaUnavailable` (retry) or :class:`KafkaAdminError` (Kafka said no)."""
    err = _kafka_error(exc)
    if err is not None:
        if is_transient(err):
            return KafkaUnavailable(f"cannot {action}: {err.str()}")
        return KafkaAdminError(err.name(), f"cannot {action}: {err.str()}")
    if isinstance(exc, Exception):
        return exc
    return RuntimeError(str(exc))


class AccessAdmin(PolledAdmin):
    """Batched, asyncio-friendly SCRAM user and ACL administration on one ``AdminClient``."""

    _poller_name = "kafka-access-poller"

    def __init__(
        self, settings: KafkaAdminSettings, *, client_factory: Callable[[dict[str, Any]], AdminClient] = AdminClient
    ) -> None:
        super().__init__(settings, "srs-operator-access", __name__, client_factory)
        limits = BatchLimits(settings.batch_window, settings.max_batch)
        self._describe_acls = Coalescer("describe_acls", self._issue_describe_acls, str, limits, dedupe=True)
        self._create_acls = Coalescer("create_acls", self._issue_create_acls, _binding_key, limits, dedupe=True)
        self._delete_acls = Coalescer("delete_acls", self._issue_delete_acls, _filter_key, limits, dedupe=True)
        self._describe_users = Coalescer(
            "describe_user_scram_credentials", self._issue_describe_users, str, limits, dedupe=True
        )
        self._alter_users = Coalescer(
            "alter_user_scram_credentials", self._issue_alter_users, _alteration_user, limits, dedupe=False
        )

    @property
    def stats(self) -> dict[str, BatchStats]:
        coalescers = (
            self._describe_acls,
            self._create_acls,
            self._delete_acls,
            self._describe_users,
            self._alter_users,
        )
        return {c.name: c.stats for c in coalescers}

    # -- ACLs ----------------------------------------------------------------------------

    async def acls(self, principal: str) -> frozenset[AclEntry]:
        """The ALLOW rules (any host) Kafka holds for ``principal``."""
        try:
            bindings: list[AclBinding] = await self._describe_acls.submit(_ALL)
        except KafkaException as e:
            raise _error(e, "describe ACLs") from e
        found = (_entry(b) for b in bindings if b.principal == principal)
        return frozenset(e for e in found if e is not None)

    async def create_acls(self, principal: str, entries: Iterable[AclEntry]) -> None:
        await self._each(self._create_acls, [_binding(principal, e) for e in entries], "create ACLs")

    async def delete_acls(self, principal: str, entries: Iterable[AclEntry]) -> None:
        await self._each(self._delete_acls, [_filter(principal, e) for e in entries], "delete ACLs")

    async def delete_all_acls(self, principal: str) -> None:
        """Every ACL of ``principal``, whatever it names (none is fine)."""
        any_of_principal = AclBindingFilter(
            ResourceType.ANY, _ANY, ResourcePatternType.ANY, principal, _ANY, AclOperation.ANY, AclPermissionType.ANY
        )
        await self._each(self._delete_acls, [any_of_principal], "delete ACLs")

    # -- SCRAM users ---------------------------------------------------------------------

    async def scram_user(self, username: str) -> ScramUser | None:
        """The user's SCRAM mechanisms; None when Kafka has no credentials for it."""
        try:
            description: UserScramCredentialsDescription = await self._describe_users.submit(username)
        except KafkaException as e:
            err = _kafka_error(e)
            if err is not None and err.code() == KafkaError.RESOURCE_NOT_FOUND:
                return None
            raise _error(e, f"describe the SCRAM credentials of user {username}") from e
        infos = description.scram_credential_infos or []
        return ScramUser(username, frozenset(_mechanism_name(i.mechanism) for i in infos))

    async def set_password(self, username: str, password: str, mechanism: str, iterations: int) -> None:
        """Create or replace the user's SCRAM credentials."""
        info = ScramCredentialInfo(_scram_mechanism(mechanism), iterations)
        upsert = UserScramCredentialUpsertion(username, info, password.encode())
        try:
            await self._alter_users.submit(upsert)
        except KafkaException as e:
            raise _error(e, f"set the SCRAM credentials of user {username}") from e

    async def delete_user(self, username: str, mechanism: str) -> None:
        """Remove the user's SCRAM credentials; a user Kafka does not know is fine."""
        try:
            await self._alter_users.submit(UserScramCredentialDeletion(username, _scram_mechanism(mechanism)))
        except KafkaException as e:
            err = _kafka_error(e)
            if err is not None and err.code() == KafkaError.RESOURCE_NOT_FOUND:
                return
            raise _error(e, f"delete the SCRAM credentials of user {username}") from e

    # -- helpers -------------------------------------------------------------------------

    async def _each(self, batch: Coalescer[Any], requests: Sequence[Any], action: str) -> None:
        outcomes = await asyncio.gather(*(batch.submit(r) for r in requests), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise _error(outcome, action) from outcome

    # -- one admin call per batch ----------------------------------------------------------

    def _issue_describe_acls(self, keys: Sequence[str]) -> Mapping[str, Future[Any]]:
        return {_ALL: self._admin.describe_acls(_ANY_ACL, request_timeout=self.settings.request_timeout)}

    def _issue_create_acls(self, bindings: Sequence[AclBinding]) -> Mapping[str, Future[Any]]:
        result = self._admin.create_acls(list(bindings), request_timeout=self.settings.request_timeout)
        return {_binding_key(b): f for b, f in result.items()}

    def _issue_delete_acls(self, filters: Sequence[AclBindingFilter]) -> Mapping[str, Future[Any]]:
        result = self._admin.delete_acls(list(filters), request_timeout=self.settings.request_timeout)
        return {_filter_key(f): fut for f, fut in result.items()}

    def _issue_describe_users(self, users: Sequence[str]) -> Mapping[str, Future[Any]]:
        result = self._admin.describe_user_scram_credentials(list(users), request_timeout=self.settings.request_timeout)
        assert isinstance(result, dict)
        return result

    def _issue_alter_users(self, alterations: Sequence[UserScramCredentialAlteration]) -> Mapping[str, Future[Any]]:
        return self._admin.alter_user_scram_credentials(
            list(alterations), request_timeout=self.settings.request_timeout
        )


def _binding_key(binding: AclBinding) -> str:
    return "\0".join(
        str(x)
        for x in (
            binding.principal,
            _name(binding.restype),
            binding.name,
            _name(binding.resource_pattern_type),
            binding.host,
            _name(binding.operation),
            _name(binding.permission_type),
        )
    )


def _filter_key(binding_filter: AclBindingFilter) -> str:
    return _binding_key(binding_filter)


def _alteration_user(alteration: UserScramCredentialAlteration) -> str:
    return str(alteration.user)
