"""Customer enrichment from DynamoDB (moto's server speaking the real protocol): cache, timeout, degradation."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from agent_runtime.agent import build_handler
from agent_runtime.providers.offline import OfflineProvider
from agent_runtime.roles.enrichment import CustomerLookup
from srs_contracts.agent_config import EnrichmentConfig
from tests.unit.agent_fixtures import KeywordClassifier, metric, record, ticket_created, triage_config

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("fake_aws_credentials")]

TABLE = "srs-customers"


@pytest.fixture
def table(moto_url: str) -> Iterator[Any]:
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_url)
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(
        TableName=TABLE,
        Item={
            "customer_id": {"S": "cust-42"},
            "name": {"S": "Maria Lopez"},
            "tier": {"S": "enterprise"},
            "seats": {"N": "25"},
            "mrr": {"N": "1499.5"},
            "tags": {"SS": ["vip", "eu"]},
        },
    )
    try:
        yield client
    finally:
        client.delete_table(TableName=TABLE)


def config(url: str, **overrides: Any) -> EnrichmentConfig:
    return EnrichmentConfig.model_validate(
        {"table": TABLE, "region": "us-east-1", "endpoint_url": url, "timeout_seconds": 2, **overrides}
    )


def lookup_all(lookup: CustomerLookup, *customer_ids: str) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return [await lookup.lookup(c) for c in customer_ids]
        finally:
            await lookup.aclose()

    return asyncio.run(go())


def degraded(agent: str, reason: str) -> float:
    return metric("srs_agent_enrichment_degraded_total", agent=agent, reason=reason)


def test_a_known_customer_is_returned_as_plain_json_values(table: Any, moto_url: str) -> None:
    (customer,) = lookup_all(CustomerLookup(config(moto_url), agent="t-enr-ok"), "cust-42")
    assert customer == {
        "customer_id": "cust-42", "name": "Maria Lopez", "tier": "enterprise", "seats": 25, "mrr": 1499.5,
        "tags": ["eu", "vip"],
    }  # fmt: skip


def test_an_unknown_customer_is_none_and_not_a_degradation(table: Any, moto_url: str) -> None:
    before = degraded("t-enr-missing", "error")
    assert lookup_all(CustomerLookup(config(moto_url), agent="t-enr-missing"), "nobody") == [None]
    assert degraded("t-enr-missing", "error") == before


def test_lookups_are_cached_until_the_ttl_expires(table: Any, moto_url: str) -> None:
    now = [1000.0]
    lookup = CustomerLookup(config(moto_url, cache_ttl_seconds=60), agent="t-enr-cache", clock=lambda: now[0])

    async def go() -> list[Any]:
        first = await lookup.lookup("cust-42")
        table.delete_item(TableName=TABLE, Key={"customer_id": {"S": "cust-42"}})
        cached = await lookup.lookup("cust-42")
        now[0] += 61
        expired = await lookup.lookup("cust-42")
        await lookup.aclose()
        return [first, cached, expired]

    first, cached, expired = asyncio.run(go())
    assert first is not None and cached == first
    assert expired is None


def test_a_missing_table_degrades_to_no_enrichment_and_is_counted(moto_url: str) -> None:
    before = degraded("t-enr-notable", "error")
    assert lookup_all(CustomerLookup(config(moto_url), agent="t-enr-notable"), "cust-42") == [None]
    assert degraded("t-enr-notable", "error") == before + 1


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A TCP endpoint that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_lookup_that_does_not_answer_in_time_degrades_within_the_timeout(black_hole: str) -> None:
    before = degraded("t-enr-slow", "timeout")
    lookup = CustomerLookup(config(black_hole, timeout_seconds=0.3), agent="t-enr-slow")
    started = time.monotonic()
    assert lookup_all(lookup, "cust-42") == [None]
    assert time.monotonic() - started < 1.5
    assert degraded("t-enr-slow", "timeout") == before + 1


def test_an_unreachable_endpoint_degrades_and_is_not_cached(table: Any, moto_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    before = degraded("t-enr-down", "unavailable") + degraded("t-enr-down", "timeout")
    lookup = CustomerLookup(config(f"http://127.0.0.1:{closed_port}", timeout_seconds=1), agent="t-enr-down")
    assert lookup_all(lookup, "cust-42", "cust-42") == [None, None]
    assert degraded("t-enr-down", "unavailable") + degraded("t-enr-down", "timeout") == before + 2


class _CountingClient:
    def __init__(self) -> None:
        self.calls = 0

    def get_item(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        time.sleep(0.1)
        return {"Item": {"customer_id": {"S": "cust-42"}}}

    def close(self) -> None:
        pass


def test_concurrent_lookups_of_one_customer_share_one_request() -> None:
    client = _CountingClient()
    lookup = CustomerLookup(config("http://unused"), agent="t-enr-share", client=client)

    async def go() -> list[Any]:
        results = await asyncio.gather(*(lookup.lookup("cust-42") for _ in range(10)))
        await lookup.aclose()
        return list(results)

    assert asyncio.run(go()) == [{"customer_id": "cust-42"}] * 10
    assert client.calls == 1


def test_the_triaged_event_carries_the_customer_record_or_null(table: Any, moto_url: str) -> None:
    cfg = triage_config(enrichment={"table": TABLE, "region": "us-east-1", "endpoint_url": moto_url})
    handler = build_handler(cfg, provider=OfflineProvider(agent="triage", classifier=KeywordClassifier()))

    async def go() -> list[Any]:
        known = await handler.handle(record(_json(ticket_created(customer_id="cust-42"))))
        unknown = await handler.handle(record(_json(ticket_created(customer_id="cust-unknown", event_id="e-2"))))
        await handler.aclose()
        return [known[0], unknown[0]]

    known, unknown = asyncio.run(go())
    assert json.loads(known.value)["customer"]["tier"] == "enterprise"
    assert json.loads(unknown.value)["customer"] is None


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def test_an_item_with_binary_values_and_undeclared_attributes_still_enriches(table: Any, moto_url: str) -> None:
    table.put_item(
        TableName=TABLE,
        Item={
            "customer_id": {"S": "cust-bin"},
            "name": {"S": "Ana " + "x" * 5000},
            "tags": {"SS": ["b", "a"]},
            "plan": {"BS": [b"\x00\x01", b"\x02"]},  # a binary set: crashed the lookup before
            "mrr": {"B": b"\xff"},
            "password_hash": {"S": "never copied"},
            "notes": {"L": [{"M": {"deep": {"L": [{"S": "too deep"}]}}}]},
        },
    )
    before = degraded("t-enr-bin", "invalid_item")
    (customer,) = lookup_all(CustomerLookup(config(moto_url), agent="t-enr-bin"), "cust-bin")
    assert customer == {"customer_id": "cust-bin", "name": ("Ana " + "x" * 5000)[:1000], "tags": ["a", "b"]}
    assert degraded("t-enr-bin", "invalid_item") == before


def test_only_declared_attributes_are_read(table: Any, moto_url: str) -> None:
    lookup = CustomerLookup(config(moto_url, attributes=["tier", "notes"]), agent="t-enr-declared")
    assert lookup_all(lookup, "cust-42") == [{"tier": "enterprise"}]


def test_an_item_that_cannot_be_read_degrades() -> None:
    class Broken(_CountingClient):
        def get_item(self, **_: Any) -> dict[str, Any]:
            return {"Item": {"customer_id": {"Q": "no such type"}}}

    before = degraded("t-enr-broken", "invalid_item")
    lookup = CustomerLookup(config("http://unused"), agent="t-enr-broken", client=Broken())
    assert lookup_all(lookup, "cust-42") == [None]
    assert degraded("t-enr-broken", "invalid_item") == before + 1
