"""The Kafka client of agents' identities (``clients/kafka_access.py``) against a stand-in of
confluent-kafka's ``AdminClient`` that answers with the library's own types and futures:
bindings go out as Kafka spells them, come back as plan entries, and concurrent callers
share admin requests (the integration suite runs the same against the real broker)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialsDescription,
    UserScramCredentialUpsertion,
)

from srs_operator.clients.kafka_access import AccessAdmin
from srs_operator.clients.kafka_admin import KafkaAdminError, KafkaAdminSettings, KafkaUnavailable
from srs_operator.models.kafkaaccess import AclEntry, Operation, Pattern, Resource

pytestmark = pytest.mark.unit

A, B = "User:srs.team.a", "User:srs.team.b"


def _done(value: Any = None, error: KafkaError | None = None) -> Future[Any]:
    future: Future[Any] = Future()
    if error is not None:
        future.set_exception(KafkaException(error))
    else:
        future.set_result(value)
    return future


class FakeAdminClient:
    """What the broker holds, behind confluent-kafka's AdminClient methods."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.bindings: list[AclBinding] = []
        self.users: dict[str, tuple[ScramMechanism, bytes]] = {}
        self.calls: list[tuple[str, int]] = []
        self.error: KafkaError | None = None

    def poll(self, timeout: float) -> int:
        return 0

    def describe_acls(self, acl_filter: AclBindingFilter, **_: Any) -> Future[Any]:
        self.calls.append(("describe_acls", 1))
        assert acl_filter.principal is None and acl_filter.restype == ResourceType.ANY
        return _done(list(self.bindings), self.error)

    def create_acls(self, bindings: list[AclBinding], **_: Any) -> dict[AclBinding, Future[Any]]:
        self.calls.append(("create_acls", len(bindings)))
        self.bindings += bindings
        return {b: _done(None, self.error) for b in bindings}

    def delete_acls(self, filters: list[AclBindingFilter], **_: Any) -> dict[AclBindingFilter, Future[Any]]:
        self.calls.append(("delete_acls", len(filters)))
        out = {}
        for f in filters:
            gone = [b for b in self.bindings if _matches(f, b)]
            self.bindings = [b for b in self.bindings if b not in gone]
            out[f] = _done(gone)
        return out

    def describe_user_scram_credentials(self, users: list[str], **_: Any) -> dict[str, Future[Any]]:
        self.calls.append(("describe_user_scram_credentials", len(users)))
        out: dict[str, Future[Any]] = {}
        for user in users:
            if user in self.users:
                info = ScramCredentialInfo(self.users[user][0], 4096)
                out[user] = _done(UserScramCredentialsDescription(user, [info]))
            else:
                out[user] = _done(error=KafkaError(KafkaError.RESOURCE_NOT_FOUND))
        return out

    def alter_user_scram_credentials(self, alterations: list[Any], **_: Any) -> dict[str, Future[Any]]:
        self.calls.append(("alter_user_scram_credentials", len(alterations)))
        out: dict[str, Future[Any]] = {}
        for alteration in alterations:
            if isinstance(alteration, UserScramCredentialUpsertion):
                info = alteration.scram_credential_info
                self.users[alteration.user] = (info.mechanism, alteration.password)
                out[alteration.user] = _done()
            else:
                assert isinstance(alteration, UserScramCredentialDeletion)
                missing = alteration.user not in self.users
                self.users.pop(alteration.user, None)
                out[alteration.user] = _done(error=KafkaError(KafkaError.RESOURCE_NOT_FOUND) if missing else None)
        return out


def _matches(f: AclBindingFilter, b: AclBinding) -> bool:
    return (
        (f.principal is None or f.principal == b.principal)
        and (f.restype == ResourceType.ANY or f.restype == b.restype)
        and (f.name is None or f.name == b.name)
        and (f.operation == AclOperation.ANY or f.operation == b.operation)
    )


def _admin() -> tuple[AccessAdmin, FakeAdminClient]:
    made: list[FakeAdminClient] = []

    def factory(config: dict[str, Any]) -> Any:
        made.append(FakeAdminClient(config))
        return made[0]

    admin = AccessAdmin(KafkaAdminSettings({"bootstrap.servers": "kafka:9092"}), client_factory=factory)
    return admin, made[0]


READ_IN = AclEntry(Resource.TOPIC, "team.in", Pattern.LITERAL, Operation.READ)
WRITE_OUT = AclEntry(Resource.TOPIC, "team.out", Pattern.LITERAL, Operation.WRITE)
TXN = AclEntry(Resource.TRANSACTIONAL_ID, "srs.team.a-", Pattern.PREFIXED, Operation.WRITE)


def test_acls_go_out_as_kafka_bindings_and_come_back_as_plan_entries() -> None:
    admin, kafka = _admin()

    async def run() -> None:
        await admin.create_acls(A, [READ_IN, WRITE_OUT, TXN])
        await admin.create_acls(B, [READ_IN])
        assert await admin.acls(A) == {READ_IN, WRITE_OUT, TXN}
        await admin.delete_acls(A, [WRITE_OUT])
        assert await admin.acls(A) == {READ_IN, TXN}
        await admin.delete_all_acls(A)
        assert await admin.acls(A) == frozenset()
        assert await admin.acls(B) == {READ_IN}, "another principal's ACLs are untouched"

    asyncio.run(run())
    txn = next(b for b in kafka.bindings if b.principal == B)
    assert (txn.restype, txn.resource_pattern_type, txn.host, txn.permission_type) == (
        ResourceType.TOPIC,
        ResourcePatternType.LITERAL,
        "*",
        AclPermissionType.ALLOW,
    )


def test_what_the_operator_never_grants_is_left_alone() -> None:
    admin, kafka = _admin()
    topic, literal = ResourceType.TOPIC, ResourcePatternType.LITERAL
    kafka.bindings = [
        AclBinding(topic, "x", literal, A, "*", AclOperation.READ, AclPermissionType.DENY),
        AclBinding(topic, "y", literal, A, "10.0.0.1", AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(topic, "z", literal, A, "*", AclOperation.ALTER, AclPermissionType.ALLOW),
    ]
    assert asyncio.run(admin.acls(A)) == frozenset()


def test_concurrent_agents_share_one_describe_and_one_create() -> None:
    admin, kafka = _admin()
    principals = [f"User:srs.team.agent-{i}" for i in range(50)]

    async def run() -> None:
        await asyncio.gather(*(admin.acls(p) for p in principals))
        await asyncio.gather(*(admin.create_acls(p, [READ_IN, WRITE_OUT]) for p in principals))

    asyncio.run(run())
    assert kafka.calls == [("describe_acls", 1), ("create_acls", 100)]


def test_scram_users_are_described_set_and_deleted() -> None:
    admin, kafka = _admin()

    async def run() -> None:
        assert await admin.scram_user("srs.team.a") is None
        await admin.set_password("srs.team.a", "pw-1", "SCRAM-SHA-512", 4096)
        user = await admin.scram_user("srs.team.a")
        assert user is not None and user.mechanisms == {"SCRAM-SHA-512"}
        await admin.delete_user("srs.team.a", "SCRAM-SHA-512")
        await admin.delete_user("srs.team.a", "SCRAM-SHA-512")  # already gone: fine
        assert await admin.scram_user("srs.team.a") is None

    asyncio.run(run())
    assert kafka.users == {}


def test_errors_are_sorted_into_retry_later_and_refused() -> None:
    admin, kafka = _admin()
    kafka.error = KafkaError(KafkaError._TRANSPORT)
    with pytest.raises(KafkaUnavailable, match="cannot describe ACLs"):
        asyncio.run(admin.acls(A))
    kafka.error = KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaAdminError) as refused:
        asyncio.run(admin.create_acls(A, [READ_IN]))
    assert refused.value.code == "CLUSTER_AUTHORIZATION_FAILED"
