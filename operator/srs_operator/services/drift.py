"""Does a child object need a server-side apply? Pure comparison of desired and live.

A child is applied when it is missing (``create``), when the desired manifest changed
since the operator last applied it (``update``: the digest recorded in
``srs.dev/applied`` differs — this also catches fields the operator stopped setting), or
when someone changed a field the operator sets (``drift``: the live object no longer
contains the desired one). Otherwise nothing is sent: steady state makes no writes.

"Contains" tolerates what the API server adds (defaults, status, clusterIP, other
managers' fields) and how it normalises quantities (``0.5`` CPU is stored as ``500m``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final

from srs_operator.builders.supportagent import manifest_digest

APPLIED_ANNOTATION: Final = "srs.dev/applied"
# List items are matched by the first of these keys the desired item has (SSA merge keys).
_ITEM_KEYS: Final = ("name", "containerPort", "mountPath", "port")
_QUANTITY_KEYS: Final = frozenset({"cpu", "memory", "ephemeral-storage", "sizeLimit"})
_QUANTITY: Final = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")
_SUFFIX: Final[Mapping[str, Decimal]] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


class ApplyCause(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DRIFT = "drift"


def with_digest(desired: Mapping[str, Any], digest: str | None = None) -> dict[str, Any]:
    """``desired`` with its own digest (``digest``, when the caller has it) recorded in
    ``metadata.annotations``."""
    out = dict(desired)
    meta = dict(out["metadata"])
    digest = manifest_digest(desired) if digest is None else digest
    meta["annotations"] = dict(meta.get("annotations") or {}) | {APPLIED_ANNOTATION: digest}
    out["metadata"] = meta
    return out


def needs_apply(
    desired: Mapping[str, Any], live: Mapping[str, Any] | None, digest: str | None = None
) -> ApplyCause | None:
    """Why ``desired`` (as built, without the digest annotation; ``digest``: its
    :func:`manifest_digest`, when the caller has it) must be applied, or None."""
    if live is None:
        return ApplyCause.CREATE
    digest = manifest_digest(desired) if digest is None else digest
    recorded = ((live.get("metadata") or {}).get("annotations") or {}).get(APPLIED_ANNOTATION)
    if recorded != digest:
        return ApplyCause.UPDATE
    if not contains(live, with_digest(desired, digest)):
        return ApplyCause.DRIFT
    return None


def contains(live: Any, desired: Any, key: str = "") -> bool:
    """Whether every field of ``desired`` is in ``live`` with an equal value."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(k in live and contains(live[k], v, k) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list):
            return False
        if all(isinstance(item, Mapping) for item in desired):
            return all(_find(live, item, i) is not None for i, item in enumerate(desired))
        return live == desired
    if desired == live:
        return True
    return key in _QUANTITY_KEYS and _quantity(desired) is not None and _quantity(desired) == _quantity(live)


def _find(live: list[Any], item: Mapping[str, Any], index: int) -> Any:
    for k in _ITEM_KEYS:
        if k in item:
            match = next((x for x in live if isinstance(x, Mapping) and x.get(k) == item[k]), None)
            return match if match is not None and contains(match, item) else None
    if index < len(live) and contains(live[index], item):
        return live[index]
    return None


def _quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity as a number (``500m`` → 0.5, ``1Gi`` → 1073741824)."""
    m = _QUANTITY.match(str(value))
    if m is None:
        return None
    number, suffix = m.group(1), m.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, KeyError):
        return None
