"""Shared pieces of the TicketTopic scenario tests: the operator's environment for them
(the process itself is ``operator_process``'s), namespaces the operator watches,
TicketTopic and Kafka helpers, and a TCP forwarder that plays a Kafka bootstrap address
which can be switched on later (Kafka "down", then back)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType
from kubernetes import client

from devstack.processes import free_port
from tests.harness import wait_for

GROUP, VERSION, PLURAL = "srs.dev", "v1alpha1", "tickettopics"
#: How the TicketTopic scenarios run the operator (the ``topic_operator`` fixture): a level
#: check every 3 s and short Kafka requests, so recoveries show within a test's patience.
TOPIC_OPERATOR_ENV: Final = {"SRS_TOPIC_RESYNC_SECONDS": "3", "SRS_KAFKA_REQUEST_TIMEOUT_SECONDS": "5"}


class TicketTopics:
    """TicketTopic objects through the API server, as a user would handle them."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def create(self, namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TicketTopic",
            "metadata": {"name": name, "namespace": namespace},
            "spec": dict(spec),
        }
        return dict(self.api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body))

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))

    def exists(self, namespace: str, name: str) -> bool:
        try:
            self.get(namespace, name)
        except client.ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def patch_spec(self, namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """JSON merge patch of the spec (``None`` removes a key)."""
        return dict(
            self.api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": dict(spec)})
        )

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.api.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {"status": status})

    def delete(self, namespace: str, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def delete_all_for(self, topics: set[str], timeout: float = 30) -> None:
        """Delete every TicketTopic (any namespace) that manages one of ``topics`` and wait
        until they are gone — before a test deletes the Kafka topics themselves, or the
        operator would recreate them."""
        found = [
            (o["metadata"]["namespace"], o["metadata"]["name"])
            for o in self.api.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
            if (o.get("status") or {}).get("topicName", (o.get("spec") or {}).get("topicName", o["metadata"]["name"]))
            in topics
        ]
        for namespace, name in found:
            with contextlib.suppress(client.ApiException):
                self.delete(namespace, name)
        wait_for("the TicketTopics to be gone", lambda: not any(self.exists(ns, n) for ns, n in found), timeout=timeout)

    def condition(self, namespace: str, name: str, type_: str = "Ready") -> dict[str, Any] | None:
        conditions = self.get(namespace, name).get("status", {}).get("conditions") or []
        return next((c for c in conditions if c.get("type") == type_), None)

    def wait_condition(
        self,
        namespace: str,
        name: str,
        status: str,
        reason: str | None = None,
        type_: str = "Ready",
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Wait until condition ``type_`` has ``status`` (and ``reason``) for the current generation."""
        found: dict[str, Any] = {}

        def check() -> bool:
            obj = self.get(namespace, name)
            generation = obj["metadata"].get("generation")
            for c in obj.get("status", {}).get("conditions") or []:
                if c.get("type") != type_ or c.get("observedGeneration") != generation:
                    continue
                if c.get("status") == status and (reason is None or c.get("reason") == reason):
                    found.update(obj)
                    return True
            return False

        wait_for(f"{namespace}/{name} {type_}={status} {reason or ''}", check, timeout=timeout)
        return found

    def events(self, namespace: str, name: str) -> list[client.CoreV1Event]:
        items = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        return [e for e in items if e.involved_object.kind == "TicketTopic"]

    def wait_event(self, namespace: str, name: str, reason: str, timeout: float = 30) -> client.CoreV1Event:
        found: list[client.CoreV1Event] = []

        def check() -> bool:
            found[:] = [e for e in self.events(namespace, name) if e.reason == reason]
            return bool(found)

        wait_for(f"a {reason} Event on {namespace}/{name}", check, timeout=timeout)
        return found[0]


@dataclass(frozen=True)
class KafkaTopic:
    """A topic as the test sees it through its own AdminClient."""

    name: str
    topic_id: str
    partitions: int
    replication_factor: int
    #: Dynamic topic overrides only.
    overrides: dict[str, str]
    #: Every config entry: name → (value, source).
    config: dict[str, tuple[str | None, int]]


def describe_topic(admin: AdminClient, name: str) -> KafkaTopic | None:
    """The topic as the broker describes it; None while it does not exist (two requests: a
    topic deleted or recreated between them reads as absent, as it is at that moment)."""
    resource = ConfigResource(ResourceType.TOPIC, name)
    try:
        desc = admin.describe_topics(TopicCollection([name]))[name].result(timeout=30)
        entries = admin.describe_configs([resource])[resource].result(timeout=30)
    except KafkaException as e:
        if e.args[0].name() == "UNKNOWN_TOPIC_OR_PART":
            return None
        raise
    from srs_operator.clients.kafka_admin import topic_id_text

    return KafkaTopic(
        name=name,
        topic_id=topic_id_text(desc.topic_id),
        partitions=len(desc.partitions),
        replication_factor=max(len(p.replicas) for p in desc.partitions),
        overrides={k: v.value for k, v in entries.items() if v.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value},
        config={k: (v.value, v.source) for k, v in entries.items()},
    )


def delete_topic_if_present(admin: AdminClient, name: str) -> None:
    try:
        admin.delete_topics([name])[name].result(timeout=30)
    except KafkaException as e:
        if e.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
            raise


class TcpForwarder:
    """Listens on a fixed loopback port once :meth:`start` is called and forwards every
    connection to ``target``. Before that the port refuses connections: a Kafka bootstrap
    address that is down and later comes up."""

    def __init__(self, target: str, port: int | None = None) -> None:
        host, _, port_text = target.rpartition(":")
        self._target = (host, int(port_text))
        self.port = port or free_port()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        server.settimeout(0.2)
        self._server = server
        self._spawn(self._accept_loop)

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stopping.is_set():
            try:
                downstream, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self._target, timeout=5)
            self._spawn(self._pipe, downstream, upstream)
            self._spawn(self._pipe, upstream, downstream)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sleep_past_second_boundary() -> None:
    """creationTimestamp has one-second resolution: make the next object strictly newer."""
    time.sleep(1.1)
