"""An agent's Kafka user and ACLs, kept by the SupportAgent controller, against fakes of Kafka's
admin API and of the API server (the scenario tests in
``tests/integration/test_supportagent_kafka_access.py`` run the same against a real broker).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from srs_operator.builders import kafka_access as access
from srs_operator.clients.kafka_admin import KafkaUnavailable
from srs_operator.clients.kube import ResourceType
from srs_operator.clients.secrets import version_of
from srs_operator.models.kafkaaccess import AclEntry, ScramUser
from srs_operator.models.supportagent import SecretVersion, SupportAgent
from srs_operator.services.supportagent_kafka_access import KafkaAccess
from srs_operator.services.supportagents import SupportAgentController
from srs_operator.services.workqueue import RetryLater
from srs_operator.settings import FINALIZER, AgentKafkaSettings, OperatorSettings
from tests.unit.test_supportagent_controller import KINDS, NAME, NS, SPECIALIST, FakeCluster, FakeEvents

pytestmark = pytest.mark.unit

SETTINGS = OperatorSettings(
    agent_kafka_bootstrap_servers="kafka:9093",
    agent_kafka=AgentKafkaSettings(security_protocol="SASL_SSL"),
    resync_seconds=300,
)
USER = f"srs.{NS}.{NAME}"
PRINCIPAL = f"User:{USER}"


@dataclass
class FakeKafka:
    """What the access service asks of Kafka's admin API, over dicts."""

    passwords: dict[str, str] = field(default_factory=dict)
    acls: dict[str, set[AclEntry]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    down: bool = False

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise KafkaUnavailable("cannot describe ACLs: Local: All broker connections are down")

    async def acls_of(self, principal: str) -> frozenset[AclEntry]:
        self._call("describe_acls")
        return frozenset(self.acls.get(principal, set()))

    async def scram_user(self, username: str) -> ScramUser | None:
        self._call("describe_user_scram_credentials")
        return ScramUser(username, frozenset({"SCRAM-SHA-512"})) if username in self.passwords else None

    async def set_password(self, username: str, password: str, mechanism: str, iterations: int) -> None:
        self._call("alter_user_scram_credentials")
        self.passwords[username] = password

    async def create_acls(self, principal: str, entries: Iterable[AclEntry]) -> None:
        self._call("create_acls")
        self.acls.setdefault(principal, set()).update(entries)

    async def delete_acls(self, principal: str, entries: Iterable[AclEntry]) -> None:
        self._call("delete_acls")
        self.acls.get(principal, set()).difference_update(entries)

    async def delete_all_acls(self, principal: str) -> None:
        self._call("delete_acls")
        self.acls.pop(principal, None)

    async def delete_user(self, username: str, mechanism: str) -> None:
        self._call("alter_user_scram_credentials")
        self.passwords.pop(username, None)

    async def close(self) -> None:
        return None


class _AccessAdmin:
    """Adapts :class:`FakeKafka` to the names :class:`AccessAdmin` has."""

    def __init__(self, kafka: FakeKafka) -> None:
        self._kafka = kafka
        self.acls = kafka.acls_of
        self.scram_user = kafka.scram_user
        self.set_password = kafka.set_password
        self.create_acls = kafka.create_acls
        self.delete_acls = kafka.delete_acls
        self.delete_all_acls = kafka.delete_all_acls
        self.delete_user = kafka.delete_user
        self.close = kafka.close


KINDS.setdefault("secrets", "Secret")


@dataclass
class Cluster(FakeCluster):
    """The API server with Secrets and merge patches (metadata only back for Secrets, as asked)."""

    secret_writes: list[str] = field(default_factory=list)
    #: Metadata of every Secret version written (a lagging watch may still show an older one).
    secret_versions: list[dict[str, Any]] = field(default_factory=list)

    async def apply(self, obj: Mapping[str, Any], *, force: bool = True, accept: str = "") -> dict[str, Any]:
        written = await super().apply(obj, force=force)
        if obj["kind"] == "Secret":
            self.secret_writes.append(obj["metadata"]["annotations"][access.STATE_ANNOTATION])
            self.secret_versions.append(copy.deepcopy(written["metadata"]))
            return {"metadata": written["metadata"]}
        return written

    async def merge_patch(
        self, rtype: ResourceType, namespace: str | None, name: str, patch: Mapping[str, Any], *, accept: str = ""
    ) -> dict[str, Any]:
        kind = KINDS[rtype.plural]
        self.writes.append(("merge_patch", kind))
        obj = copy.deepcopy(self.objects[(kind, namespace or "", name)])
        meta = patch.get("metadata") or {}
        if "finalizers" in meta:
            obj["metadata"]["finalizers"] = meta["finalizers"]
        obj["metadata"].setdefault("annotations", {}).update(meta.get("annotations") or {})
        for key, value in (patch.get("data") or {}).items():
            if value is None:
                obj.get("data", {}).pop(key, None)
            else:
                obj.setdefault("data", {})[key] = value
        if kind == "Secret":
            self.secret_writes.append(obj["metadata"]["annotations"][access.STATE_ANNOTATION])
        written = self.put(obj)
        return {"metadata": written["metadata"]} if kind == "Secret" else written

    def password(self) -> str:
        secret = self.objects[("Secret", NS, f"{NAME}-kafka")]
        return base64.b64decode(secret["data"]["password"]).decode()


class ClusterSecrets:
    """The Secrets' metadata watch: what the cluster holds, as metadata."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    async def of(self, namespace: str) -> Mapping[str, SecretVersion]:
        return {
            name: version_of(obj["metadata"])
            for (kind, ns, name), obj in self._cluster.objects.items()
            if kind == "Secret" and ns == namespace
        }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(
    spec: dict[str, Any] | None = None, **annotations: str
) -> tuple[Cluster, FakeKafka, FakeEvents, SupportAgentController, Clock]:
    cluster, kafka, events, clock = Cluster(), FakeKafka(), FakeEvents(), Clock()
    body = {
        "apiVersion": "srs.dev/v1alpha1",
        "kind": "SupportAgent",
        "metadata": {"namespace": NS, "name": NAME, "uid": "uid-agent", "generation": 1, "annotations": annotations},
        "spec": spec or SPECIALIST,
    }
    cluster.put(body)
    return cluster, kafka, events, operator(cluster, kafka, events, clock), clock


def operator(
    cluster: Cluster, kafka: FakeKafka, events: FakeEvents, clock: Clock, settings: OperatorSettings = SETTINGS
) -> SupportAgentController:
    """A (fresh) operator's SupportAgent controller over this cluster and Kafka."""
    manager = KafkaAccess(cluster, _AccessAdmin(kafka), settings, clock=clock)  # type: ignore[arg-type]
    return SupportAgentController(
        cluster,  # type: ignore[arg-type]
        cluster,
        settings,
        events=events,  # type: ignore[arg-type]
        secrets=ClusterSecrets(cluster),
        access=manager,
    )


def run(ctl: SupportAgentController) -> None:
    async def go() -> None:
        try:
            await ctl.reconcile((NS, NAME))
        finally:
            await ctl.stop()

    asyncio.run(go())


def agent_body(cluster: Cluster) -> dict[str, Any]:
    return cluster.objects[("SupportAgent", NS, NAME)]


def condition(cluster: Cluster, type_: str) -> dict[str, Any]:
    return next(c for c in agent_body(cluster)["status"]["conditions"] if c["type"] == type_)


def test_a_new_agent_gets_a_user_its_acls_and_its_secret_before_any_child() -> None:
    cluster, kafka, events, ctl, _ = setup()
    run(ctl)
    assert FINALIZER in agent_body(cluster)["metadata"]["finalizers"]
    # The Secret is written pending, Kafka gets the password, then the Secret says issued.
    assert cluster.secret_writes == [access.PENDING, access.ISSUED]
    assert kafka.passwords[USER] == cluster.password()
    agent = SupportAgent.from_body(agent_body(cluster))
    assert kafka.acls[PRINCIPAL] == set(access.plan_access(agent).acls)
    kinds = [kind for verb, kind in cluster.writes if verb == "apply"]
    assert kinds[0] == "Secret" and "Deployment" in kinds
    ready = condition(cluster, "KafkaAccessReady")
    assert (ready["status"], ready["reason"]) == ("True", "AccessGranted")
    assert ("Normal", "KafkaCredentialsIssued") in events.posted


def test_the_password_never_reaches_a_log_line_the_status_or_an_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cluster, _, _, ctl, _ = setup()
    run(ctl)
    password = cluster.password()
    assert password not in caplog.text
    everything = repr(agent_body(cluster)) + repr(
        [o for (kind, _, _), o in cluster.objects.items() if kind not in ("Secret",)]
    )
    assert password not in everything
    assert base64.b64encode(password.encode()).decode() not in everything


def test_an_unchanged_agent_costs_no_kafka_request_and_no_write() -> None:
    cluster, kafka, _, ctl, clock = setup()
    run(ctl)
    kafka.calls.clear()
    writes = len(cluster.writes)
    run(ctl)
    assert kafka.calls == [], "verified within half the re-check period: Kafka is not asked"
    assert len(cluster.writes) == writes
    clock.now += SETTINGS.resync_seconds  # the periodic re-check asks Kafka, and writes nothing
    run(ctl)
    assert sorted(kafka.calls) == ["describe_acls", "describe_user_scram_credentials"]
    assert len(cluster.writes) == writes


class LaggingSecrets:
    """A Secrets watch that has not yet seen the operator's last writes."""

    def __init__(self, shown: Mapping[str, SecretVersion]) -> None:
        self.shown = shown

    async def of(self, namespace: str) -> Mapping[str, SecretVersion]:
        return self.shown


@pytest.mark.parametrize("shown", ["nothing", "pending"])
def test_a_watch_that_lags_behind_the_operators_own_writes_issues_no_second_password(shown: str) -> None:
    cluster, kafka, _, ctl, clock = setup()
    run(ctl)
    password = cluster.password()
    template = copy.deepcopy(cluster.objects[("Deployment", NS, NAME)]["spec"]["template"])
    pending = {f"{NAME}-kafka": version_of(cluster.secret_versions[0])}
    ctl.inputs.secrets = LaggingSecrets(pending if shown == "pending" else {})
    clock.now += SETTINGS.resync_seconds  # Kafka is asked again, too
    run(ctl)
    assert cluster.password() == password and kafka.passwords[USER] == password
    assert cluster.secret_writes == [access.PENDING, access.ISSUED]
    assert cluster.objects[("Deployment", NS, NAME)]["spec"]["template"] == template, "no roll back and forth"


def test_a_route_added_is_granted_before_the_config_map_names_it() -> None:
    triage = {"role": "triage", "inputTopic": "ticket.events", "routes": {"billing": "ticket.triaged.billing"}}
    cluster, kafka, _, ctl, _ = setup(triage)
    run(ctl)
    seen: list[tuple[bool, str]] = []
    original = cluster.apply

    async def apply(obj: Mapping[str, Any], *, force: bool = True, accept: str = "") -> dict[str, Any]:
        granted = any(e.name == "ticket.triaged.account" for e in kafka.acls[PRINCIPAL])
        seen.append((granted, obj["kind"]))
        return await original(obj, force=force, accept=accept)

    cluster.apply = apply  # type: ignore[method-assign]
    body = agent_body(cluster)
    body["spec"]["routes"]["account"] = "ticket.triaged.account"
    body["metadata"]["generation"] = 2
    run(ctl)
    assert (True, "ConfigMap") in seen and (False, "ConfigMap") not in seen


def test_acls_the_spec_dropped_are_revoked_once_the_rollout_is_complete() -> None:
    triage = {
        "role": "triage",
        "inputTopic": "ticket.events",
        "routes": {"billing": "ticket.triaged.billing", "account": "ticket.triaged.account"},
    }
    cluster, kafka, _, ctl, _ = setup(triage)
    run(ctl)
    body = agent_body(cluster)
    del body["spec"]["routes"]["account"]
    run(ctl)
    names = {e.name for e in kafka.acls[PRINCIPAL]}
    assert "ticket.triaged.account" in names, "kept while old pods may still route there"
    deployment = cluster.objects[("Deployment", NS, NAME)]
    deployment["metadata"]["generation"] = 2
    deployment["status"] = {
        "observedGeneration": 2,
        "replicas": 1,
        "updatedReplicas": 1,
        "availableReplicas": 1,
        "readyReplicas": 1,
    }
    run(ctl)
    assert "ticket.triaged.account" not in {e.name for e in kafka.acls[PRINCIPAL]}
    assert "ticket.triaged.billing" in {e.name for e in kafka.acls[PRINCIPAL]}


def test_a_rotation_issues_a_new_password_once_and_rolls_the_pods() -> None:
    cluster, kafka, _, ctl, _ = setup()
    run(ctl)
    first, template = cluster.password(), cluster.objects[("Deployment", NS, NAME)]["spec"]["template"]
    agent_body(cluster)["metadata"]["annotations"][access.ROTATE_ANNOTATION] = "2026-12-06T21:00"
    run(ctl)
    second = cluster.password()
    assert second != first and kafka.passwords[USER] == second
    rolled = cluster.objects[("Deployment", NS, NAME)]["spec"]["template"]
    assert rolled["metadata"]["annotations"] != template["metadata"]["annotations"], "config hash moved"
    run(ctl)
    assert cluster.password() == second, "the same annotation value asks once"


def test_an_operator_restarted_with_another_ca_puts_it_in_the_secret_and_keeps_the_password() -> None:
    cluster, kafka, events, ctl, clock = setup()
    run(ctl)
    password = cluster.password()
    secret = cluster.objects[("Secret", NS, f"{NAME}-kafka")]
    assert "ca.crt" not in secret["data"], "no private CA: the system's trust store"
    ca = "-----BEGIN CERTIFICATE-----\nMIIB (the kind cluster's new CA)\n-----END CERTIFICATE-----\n"
    with_ca = dataclasses.replace(SETTINGS, agent_kafka=dataclasses.replace(SETTINGS.agent_kafka, ca_pem=ca))
    restarted = operator(cluster, kafka, events, clock, with_ca)
    kafka.calls.clear()
    run(restarted)
    secret = cluster.objects[("Secret", NS, f"{NAME}-kafka")]
    assert base64.b64decode(secret["data"]["ca.crt"]).decode() == ca
    assert cluster.password() == password and kafka.passwords[USER] == password
    assert "alter_user_scram_credentials" not in kafka.calls
    writes = len(cluster.writes)
    clock.now += SETTINGS.resync_seconds  # re-checked with Kafka: nothing more to write
    run(restarted)
    assert len(cluster.writes) == writes
    # And back to the system's trust store: the key goes.
    run(operator(cluster, kafka, events, clock))
    assert "ca.crt" not in cluster.objects[("Secret", NS, f"{NAME}-kafka")]["data"]
    assert cluster.password() == password


def test_unreachable_kafka_holds_every_child_and_says_so() -> None:
    cluster, kafka, _, ctl, _ = setup()
    kafka.down = True
    with pytest.raises(RetryLater):
        run(ctl)
    assert ("Deployment", NS, NAME) not in cluster.objects
    assert ("Secret", NS, f"{NAME}-kafka") not in cluster.objects
    accepted, ready = condition(cluster, "Accepted"), condition(cluster, "KafkaAccessReady")
    assert (ready["status"], ready["reason"]) == ("False", "KafkaUnavailable")
    assert accepted["message"].startswith("waiting for the agent's Kafka access: cannot describe ACLs")
    assert condition(cluster, "Ready")["reason"] == "NotAccepted"


def test_deleting_the_agent_removes_its_user_and_acls_then_releases_it() -> None:
    cluster, kafka, _, ctl, _ = setup()
    run(ctl)
    agent_body(cluster)["metadata"]["deletionTimestamp"] = "2026-12-06T21:00:00Z"
    run(ctl)
    assert USER not in kafka.passwords and PRINCIPAL not in kafka.acls
    assert FINALIZER not in agent_body(cluster)["metadata"]["finalizers"]


def test_deletion_waits_for_an_unreachable_kafka_but_not_forever() -> None:
    cluster, kafka, events, ctl, _ = setup()
    run(ctl)
    kafka.down = True
    body = agent_body(cluster)
    body["metadata"]["deletionTimestamp"] = _ago(10)
    with pytest.raises(RetryLater) as waiting:
        run(ctl)
    assert waiting.value.at_most is not None and waiting.value.at_most <= SETTINGS.agent_kafka.delete_timeout - 9
    assert FINALIZER in agent_body(cluster)["metadata"]["finalizers"]
    body["metadata"]["deletionTimestamp"] = _ago(SETTINGS.agent_kafka.delete_timeout + 1)
    run(ctl)
    assert FINALIZER not in agent_body(cluster)["metadata"]["finalizers"]
    assert ("Warning", "KafkaAccessNotRemoved") in events.posted


def test_a_secret_of_that_name_that_is_not_the_agents_is_reported_not_overwritten() -> None:
    cluster, kafka, _, ctl, _ = setup()
    cluster.put({"kind": "Secret", "metadata": {"namespace": NS, "name": f"{NAME}-kafka"}, "data": {}})
    with pytest.raises(RetryLater):
        run(ctl)
    assert cluster.secret_writes == [] and kafka.passwords == {}
    ready = condition(cluster, "KafkaAccessReady")
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")


def test_without_user_management_no_finalizer_and_no_condition() -> None:
    cluster, _, _, _, _ = setup()
    ctl = SupportAgentController(
        cluster,  # type: ignore[arg-type]
        cluster,
        OperatorSettings(),
        events=FakeEvents(),  # type: ignore[arg-type]
        secrets=ClusterSecrets(cluster),
    )
    run(ctl)
    assert FINALIZER not in (agent_body(cluster)["metadata"].get("finalizers") or [])
    assert "KafkaAccessReady" not in {c["type"] for c in agent_body(cluster)["status"]["conditions"]}


def _ago(seconds: float) -> str:
    import datetime as dt

    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_agent_being_deleted_where_kopf_does_not_watch_is_released_by_the_sweep() -> None:
    cluster, kafka, _, ctl, _ = setup()
    run(ctl)
    body = agent_body(cluster)
    body["metadata"]["deletionTimestamp"] = "2026-12-06T21:00:00Z"
    hidden = copy.deepcopy(body)
    del cluster.objects[("SupportAgent", NS, NAME)]  # kopf never watches a namespace that is already terminating

    async def list_agents(rtype: ResourceType, namespace: str | None, **_: Any) -> dict[str, Any]:
        if rtype.plural == "namespaces":  # the namespace is being deleted
            return {"items": [{"metadata": {"name": NS, "deletionTimestamp": "2026-12-06T21:00:00Z"}}]}
        assert namespace == NS
        return {"items": [hidden]}

    async def patched(*args: Any, **kwargs: Any) -> dict[str, Any]:
        hidden["metadata"]["finalizers"] = []
        return hidden

    cluster.list = list_agents  # type: ignore[attr-defined]
    cluster.merge_patch = patched  # type: ignore[method-assign]

    async def go() -> int:
        try:
            return await ctl.sweep_deleted()
        finally:
            await ctl.stop()

    assert asyncio.run(go()) == 1
    assert USER not in kafka.passwords and PRINCIPAL not in kafka.acls
    assert hidden["metadata"]["finalizers"] == []
