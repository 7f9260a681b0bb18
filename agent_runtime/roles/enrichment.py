"""Optional customer enrichment for triage: one DynamoDB ``GetItem`` per customer, cached.

Enrichment helps, it never blocks: a lookup that times out or fails is counted in
``srs_agent_enrichment_degraded`` and triage goes on with ``customer: null``. Found and
not-found answers are cached for ``cache_ttl_seconds`` (failures are not, so the next
ticket tries again); concurrent lookups of one customer share one request. boto3 is
synchronous, so calls run on a small thread pool of their own.

Only the attributes the config declares (``attributes``) are read (a projection) and
copied into events and prompts, and each is cut to the bounds the ``customer`` section of
``ticket.triaged`` allows (strings, list lengths, depth). Attribute values that have no
JSON form (binary, binary sets) are left out; an item that cannot be read at all
degrades (``invalid_item``) like any other failure.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, Final

import boto3
import botocore.exceptions
from boto3.dynamodb.types import Binary, TypeDeserializer
from botocore.config import Config

from agent_runtime.metrics import ENRICHMENT_DEGRADED
from srs_contracts.agent_config import EnrichmentConfig

log = logging.getLogger(__name__)

Customer = dict[str, Any]

_MAX_CACHED: Final = 10_000
_THROTTLING: Final = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"}
)


#: The bounds of the ``customer`` section (ticket.created's metadata bounds, see events/).
_MAX_STRING: Final = 1000
_MAX_ITEMS: Final = 50
_MAX_KEY: Final = 64
#: The customer object is level 1; its values may nest two more.
_MAX_DEPTH: Final = 3


class _Omit:
    """A value with no JSON form (binary): left out of the customer record."""


_OMIT: Final = _Omit()


def _json_safe(value: Any, level: int = 1) -> Any:
    """DynamoDB values (Decimal, sets, maps, lists) as bounded JSON values; ``_OMIT`` for binary."""
    if isinstance(value, bytes | bytearray | Binary):
        return _OMIT  # binary attributes have no place in an event
    if isinstance(value, Decimal):
        if not value.is_finite():
            return _OMIT
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str):
        return value[:_MAX_STRING]
    if isinstance(value, bool) or value is None:
        return value
    if level >= _MAX_DEPTH and isinstance(value, Mapping | set | frozenset | list | tuple):
        return _OMIT
    if isinstance(value, Mapping):
        pairs = ((str(k)[:_MAX_KEY], _json_safe(v, level + 1)) for k, v in value.items())
        return dict(list((k, v) for k, v in pairs if v is not _OMIT)[:_MAX_ITEMS])
    if isinstance(value, set | frozenset | list | tuple):
        items = [v for v in (_json_safe(v, level + 1) for v in value) if v is not _OMIT]
        if value and not items:
            return _OMIT  # e.g. a binary set: nothing of it has a JSON form
        if isinstance(value, set | frozenset):
            # A set has no order; sort it for stable events (by type, then value: never None < None).
            items.sort(key=lambda v: (type(v).__name__, str(v)))
        return items[:_MAX_ITEMS]
    return _OMIT


def dynamodb_client(config: EnrichmentConfig) -> Any:
    """A DynamoDB client whose own timeouts match the lookup's budget (one retry at most)."""
    return boto3.client(
        "dynamodb",
        region_name=config.region,
        endpoint_url=config.endpoint_url,
        config=Config(
            connect_timeout=config.timeout_seconds,
            read_timeout=config.timeout_seconds,
            retries={"mode": "standard", "total_max_attempts": 2},
        ),
    )


class CustomerLookup:
    """Look customers up by id in one DynamoDB table, with a TTL cache and a timeout."""

    def __init__(
        self,
        config: EnrichmentConfig,
        *,
        agent: str,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
        max_workers: int = 4,
    ) -> None:
        self._config = config
        self._agent = agent
        self._client = client if client is not None else dynamodb_client(config)
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Customer | None]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Customer | None]] = {}
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="enrichment")
        self._deserializer = TypeDeserializer()

    def _degraded(self, reason: str) -> None:
        ENRICHMENT_DEGRADED.labels(agent=self._agent, reason=reason).inc()

    def _cached(self, customer_id: str) -> tuple[bool, Customer | None]:
        entry = self._cache.get(customer_id)
        if entry is None:
            return False, None
        expires, value = entry
        if self._clock() >= expires:
            del self._cache[customer_id]
            return False, None
        self._cache.move_to_end(customer_id)
        return True, value

    def _store(self, customer_id: str, value: Customer | None) -> None:
        if self._config.cache_ttl_seconds <= 0:
            return
        self._cache[customer_id] = (self._clock() + self._config.cache_ttl_seconds, value)
        self._cache.move_to_end(customer_id)
        while len(self._cache) > _MAX_CACHED:
            self._cache.popitem(last=False)

    def _get_item(self, customer_id: str) -> Customer | None:
        attributes = self._config.attributes
        names = {f"#a{i}": name for i, name in enumerate(attributes)}
        response = self._client.get_item(
            TableName=self._config.table,
            Key={self._config.key_attribute: {"S": customer_id}},
            # Read only what may be copied (placeholders: attribute names may be reserved words).
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
        )
        item = response.get("Item")
        if not item:
            return None
        declared = set(attributes)
        customer: Customer = {}
        for name, raw in item.items():
            if name in declared:
                value = _json_safe(self._deserializer.deserialize(raw), 2)
                if value is not _OMIT:
                    customer[name] = value
        return customer

    async def lookup(self, customer_id: str) -> Customer | None:
        """The customer's record, or None when unknown or when the lookup degraded."""
        hit, value = self._cached(customer_id)
        if hit:
            return value
        task = self._pending.get(customer_id)
        if task is None:
            # One request per customer, owned by no single caller: a cancelled ticket does
            # not cancel the lookup the others wait for.
            task = asyncio.ensure_future(self._fetch(customer_id))
            self._pending[customer_id] = task
            task.add_done_callback(lambda _: self._pending.pop(customer_id, None))
        return await asyncio.shield(task)

    async def _fetch(self, customer_id: str) -> Customer | None:
        loop = asyncio.get_running_loop()
        call = functools.partial(self._get_item, customer_id)
        try:
            async with asyncio.timeout(self._config.timeout_seconds):
                value = await loop.run_in_executor(self._executor, call)
        except TimeoutError:
            self._degraded("timeout")
            log.warning("customer lookup timed out; triaging without enrichment")
            return None
        except botocore.exceptions.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", "unknown"))
            self._degraded("throttled" if code in _THROTTLING else "error")
            log.warning("customer lookup failed; triaging without enrichment", extra={"error": code})
            return None
        except (botocore.exceptions.BotoCoreError, OSError) as e:
            reason = "timeout" if "Timeout" in type(e).__name__ else "unavailable"
            self._degraded(reason)
            log.warning("customer lookup failed; triaging without enrichment", extra={"error": type(e).__name__})
            return None
        except Exception as e:  # noqa: BLE001 - an item we cannot read: enrichment degrades, never blocks
            self._degraded("invalid_item")
            log.warning("customer record unreadable; triaging without enrichment", extra={"error": type(e).__name__})
            return None
        self._store(customer_id, value)
        return value

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()
