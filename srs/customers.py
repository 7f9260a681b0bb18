"""``srs customers seed``: load customers into the DynamoDB table the triage agent enriches from.

The input is a JSON array of objects (``--file customers.json``; ``.jsonl`` files with one
object per line work too), or the sample customers shipped with srs (the ids the sample
tickets of ``srs publish`` use). Every customer needs the table's key attribute
(``customer_id`` unless ``--key-attribute`` says otherwise) as a non-empty string.

The whole input is checked before anything is written: a bad record is reported with its
position and nothing is loaded. Items are written 25 at a time (DynamoDB's batch limit);
items the service did not process are retried with backoff. An existing customer with the
same id is replaced. The client is the one the triage agent's enrichment uses (same
region and endpoint settings), with a longer timeout for writes.

Endpoints: ``--endpoint-url`` (or ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL``,
which boto3 reads) for a local server such as moto's; otherwise AWS, with credentials
from the usual chain (environment, profile, pod identity).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Final

import botocore.exceptions
from boto3.dynamodb.types import TypeSerializer

from agent_runtime.roles.enrichment import dynamodb_client
from srs_contracts.agent_config import EnrichmentConfig

SAMPLES: Final = "customers.json"
#: DynamoDB's limits: 25 requests per BatchWriteItem, 2048 bytes per partition key, 400 KB per item.
_BATCH: Final = 25
_MAX_KEY_BYTES: Final = 2048
_MAX_ITEM_BYTES: Final = 400 * 1024
_WRITE_TIMEOUT_SECONDS: Final = 10.0
_MAX_ROUNDS: Final = 8


class SeedError(Exception):
    """The table or the service refused, with a message meant for the person running the command."""


class InvalidInput(SeedError):
    """A customer record that cannot be loaded; nothing was written."""


def sample_customers() -> list[dict[str, Any]]:
    """The sample customers shipped with srs (``srs/samples/customers.json``)."""
    loaded: list[dict[str, Any]] = json.loads(
        resources.files("srs.samples").joinpath(SAMPLES).read_text(), parse_float=Decimal
    )
    return loaded


def read_customers(path: Path) -> list[dict[str, Any]]:
    """Customers from a JSON array file, or a JSONL file (one object per line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{path}: cannot read: {e}") from e
    if text.lstrip().startswith("["):
        try:
            loaded = json.loads(text, parse_float=Decimal)
        except ValueError as e:
            raise InvalidInput(f"{path}: not JSON: {e}") from e
        records = list(enumerate(loaded, 1))
        where = "item"
    else:
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append((n, json.loads(line, parse_float=Decimal)))
            except ValueError as e:
                raise InvalidInput(f"{path}:{n}: not JSON: {e}") from e
        where = "line"
    out: list[dict[str, Any]] = []
    for n, record in records:
        if not isinstance(record, dict):
            raise InvalidInput(f"{path}: {where} {n}: expected a JSON object, got {type(record).__name__}")
        out.append(record)
    return out


def to_items(customers: Sequence[dict[str, Any]], key_attribute: str) -> list[dict[str, Any]]:
    """DynamoDB items (typed attribute values) for every customer; raises on the first bad one."""
    serializer = TypeSerializer()
    seen: dict[str, int] = {}
    items: list[dict[str, Any]] = []
    for n, customer in enumerate(customers, 1):
        key = customer.get(key_attribute)
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"customer {n}: '{key_attribute}' must be a non-empty string, got {key!r}")
        if len(key.encode()) > _MAX_KEY_BYTES:
            raise InvalidInput(f"customer {n}: '{key_attribute}' is longer than {_MAX_KEY_BYTES} bytes")
        if key in seen:
            raise InvalidInput(f"customer {n}: '{key}' appears twice (first as customer {seen[key]})")
        seen[key] = n
        try:
            item = {name: serializer.serialize(_dynamodb_value(value)) for name, value in customer.items()}
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"customer {n} ({key}): {e}") from e
        size = len(json.dumps(item, default=str).encode())
        if size > _MAX_ITEM_BYTES:
            raise InvalidInput(f"customer {n} ({key}): {size} bytes, over DynamoDB's 400 KB item limit")
        items.append(item)
    return items


def _dynamodb_value(value: Any) -> Any:
    """JSON values as DynamoDB takes them: numbers as Decimal, no float (boto3 refuses floats)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | Decimal):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, list):
        return [_dynamodb_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _dynamodb_value(v) for k, v in value.items()}
    raise TypeError(f"unsupported value {value!r}")


def seed(
    client: Any,
    table: str,
    items: Sequence[dict[str, Any]],
    progress: Callable[[int, int], None] = lambda done, total: None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write every item into ``table``; return how many were written. Raises SeedError."""
    try:
        client.describe_table(TableName=table)
    except client.exceptions.ResourceNotFoundException as e:
        raise SeedError(f"table '{table}' does not exist (create it with terraform/modules/srs-aws)") from e
    written = 0
    for start in range(0, len(items), _BATCH):
        pending = [{"PutRequest": {"Item": item}} for item in items[start : start + _BATCH]]
        for attempt in range(_MAX_ROUNDS):
            response = client.batch_write_item(RequestItems={table: pending})
            unprocessed = response.get("UnprocessedItems", {}).get(table, [])
            written += len(pending) - len(unprocessed)
            pending = unprocessed
            if not pending:
                break
            sleep(min(0.05 * 2**attempt, 2.0))  # the table is throttling: back off, then retry the rest
        if pending:
            raise SeedError(
                f"{written} of {len(items)} customers written; DynamoDB kept refusing {len(pending)} (throttled)"
            )
        progress(written, len(items))
    return written


def _run(args: argparse.Namespace) -> int:
    try:
        customers = read_customers(Path(args.file)) if args.file else sample_customers()
        items = to_items(customers, args.key_attribute)
        config = EnrichmentConfig(
            table=args.table,
            region=args.region,
            endpoint_url=args.endpoint_url,
            key_attribute=args.key_attribute,
            timeout_seconds=_WRITE_TIMEOUT_SECONDS,
        )
        client = dynamodb_client(config)
        source = args.file or "the sample customers"
        print(f"srs customers seed: {len(items)} customers from {source} into {args.table}", file=sys.stderr)

        def report(done: int, total: int) -> None:
            print(f"srs customers seed: {done}/{total} written", file=sys.stderr)

        count = seed(client, args.table, items, progress=report)
    except SeedError as e:
        print(f"srs customers seed: {e}", file=sys.stderr)
        return 2 if isinstance(e, InvalidInput) else 1
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        print(f"srs customers seed: DynamoDB: {e}", file=sys.stderr)
        return 1
    print(f"seeded {count} customers into {args.table}")
    return 0


def register(sub: Any) -> None:
    """Add ``srs customers seed`` to the ``srs`` parser's subcommands."""
    p = sub.add_parser(
        "customers",
        help="customer records for triage enrichment (DynamoDB)",
        description="Customer records the triage agent's enrichment reads from DynamoDB.",
    )
    actions = p.add_subparsers(dest="customers_command", required=True, metavar="ACTION")
    s = actions.add_parser(
        "seed",
        help="load customers into a DynamoDB table (a JSON file, or the samples)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--table", required=True, help="DynamoDB table (the srs-aws module's customers_table_name output)")
    s.add_argument("--file", "-f", help="JSON array (or JSONL) of customers; default: the samples shipped with srs")
    s.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        help="AWS region (default $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1)",
    )
    s.add_argument("--endpoint-url", help="DynamoDB endpoint, e.g. a local moto server (default: AWS)")
    s.add_argument("--key-attribute", default="customer_id", help="the table's partition key (default customer_id)")
    s.set_defaults(func=_run)
