"""``srs customers seed`` against moto's DynamoDB server, read back by the triage agent's enrichment."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from agent_runtime.roles.enrichment import CustomerLookup
from srs import customers
from srs.cli import main
from srs_contracts.agent_config import EnrichmentConfig

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("fake_aws_credentials")]

REGION = "eu-west-1"


@pytest.fixture
def table(moto_url: str) -> Iterator[str]:
    """A fresh customers table, shaped like the srs-aws module's."""
    name = f"customers-{uuid.uuid4().hex[:8]}"
    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_url)
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        yield name
    finally:
        client.delete_table(TableName=name)


def item_count(moto_url: str, table: str) -> int:
    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_url)
    return int(client.scan(TableName=table, Select="COUNT")["Count"])


def lookup(moto_url: str, table: str, customer_id: str) -> Any:
    config = EnrichmentConfig(table=table, region=REGION, endpoint_url=moto_url, timeout_seconds=5)

    async def go() -> Any:
        found = CustomerLookup(config, agent="t-seed")
        try:
            return await found.lookup(customer_id)
        finally:
            await found.aclose()

    return asyncio.run(go())


def seed(*args: str) -> int:
    return main(["customers", "seed", "--region", REGION, *args])


def test_the_sample_customers_are_seeded_and_enrichment_reads_them(
    moto_url: str, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert seed("--table", table, "--endpoint-url", moto_url) == 0
    out, err = capsys.readouterr()
    samples = customers.sample_customers()
    assert out.strip() == f"seeded {len(samples)} customers into {table}"
    assert f"{len(samples)}/{len(samples)} written" in err and "25/40 written" in err
    assert item_count(moto_url, table) == len(samples)
    first = json.loads(json.dumps(samples[0], default=float))
    assert lookup(moto_url, table, first["customer_id"]) == first


def test_a_file_of_customers_keeps_numbers_nesting_and_unicode(moto_url: str, table: str, tmp_path: Path) -> None:
    path = tmp_path / "customers.json"
    record = {
        "customer_id": "cus_42", "name": "Zoë Ångström", "tier": "enterprise", "seats": 25, "mrr": 1499.5,
        "tags": ["vip", "eu"], "plan": {"name": "Enterprise", "annual": True}, "internal_notes": "not for prompts",
    }  # fmt: skip
    path.write_text(json.dumps([record, {"customer_id": "cus_43", "name": "Li Wei"}]))
    assert seed("--table", table, "--endpoint-url", moto_url, "--file", str(path)) == 0
    found = lookup(moto_url, table, "cus_42")
    # Enrichment reads only the attributes it declares: everything but the internal notes.
    assert found == {k: v for k, v in record.items() if k != "internal_notes"}
    assert lookup(moto_url, table, "cus_43") == {"customer_id": "cus_43", "name": "Li Wei"}


def test_jsonl_files_work_too(moto_url: str, table: str, tmp_path: Path) -> None:
    path = tmp_path / "customers.jsonl"
    path.write_text('{"customer_id": "a-1", "tier": "pro"}\n\n{"customer_id": "a-2", "tier": "free"}\n')
    assert seed("--table", table, "--endpoint-url", moto_url, "--file", str(path)) == 0
    assert item_count(moto_url, table) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"customer_id": "ok"}, {"name": "no id"}]', "customer 2: 'customer_id' must be a non-empty string"),
        ('[{"customer_id": "dup"}, {"customer_id": "x"}, {"customer_id": "dup"}]', "'dup' appears twice"),
        ('[{"customer_id": "ok"}, 7]', "item 2: expected a JSON object"),
        ('{"customer_id": "ok"}\n{"customer_id": ', ":2: not JSON"),
        ('[{"customer_id": 12}]', "must be a non-empty string, got 12"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(
    moto_url: str, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "customers.json"
    path.write_text(content)
    assert seed("--table", table, "--endpoint-url", moto_url, "--file", str(path)) == 2
    assert message in capsys.readouterr().err
    assert item_count(moto_url, table) == 0


def test_a_missing_table_is_a_clear_error(moto_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert seed("--table", "no-such-table", "--endpoint-url", moto_url) == 1
    assert "table 'no-such-table' does not exist" in capsys.readouterr().err


class _ThrottlingClient:
    """Refuses half of every batch once, as a throttled table does (UnprocessedItems)."""

    class exceptions:
        ResourceNotFoundException = LookupError

    def __init__(self) -> None:
        self.stored: dict[str, Any] = {}
        self.calls = 0

    def describe_table(self, **_: Any) -> dict[str, Any]:
        return {}

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        self.calls += 1
        ((table, requests),) = RequestItems.items()
        keep, refuse = (requests, []) if self.calls % 2 == 0 else (requests[::2], requests[1::2])
        for r in keep:
            self.stored[r["PutRequest"]["Item"]["customer_id"]["S"]] = r
        return {"UnprocessedItems": {table: refuse} if refuse else {}}


def test_unprocessed_items_are_retried_until_every_customer_is_written() -> None:
    client = _ThrottlingClient()
    items = customers.to_items([{"customer_id": f"c{i}"} for i in range(60)], "customer_id")
    progress: list[tuple[int, int]] = []
    written = customers.seed(client, "t", items, progress=lambda d, t: progress.append((d, t)), sleep=lambda _: None)
    assert written == 60 and len(client.stored) == 60
    assert progress == [(25, 60), (50, 60), (60, 60)]


def test_help_documents_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["customers", "seed", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--table" in text and "--file" in text and "--endpoint-url" in text and "JSON array" in text
