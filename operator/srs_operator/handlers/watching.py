"""What every handler module shares: kopf indexes as the controllers' caches, and the
liveness checks of the process.

kopf watches a kind and keeps what a controller reads in an index (filled before any
handler runs, so the first reconcile already sees every object that exists);
:class:`IndexCache` presents one as the controller's
:class:`~srs_operator.services.controller.ObjectCache`. :class:`HandlingLag` (kept in the
memo under :data:`LAG_MEMO_KEY`) sees watches that stopped delivering; the ``watches`` and
``controllers`` probes turn both kinds of silence into a failing liveness endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeVar

import kopf

from srs_operator import kopf_patches
from srs_operator.liveness import HandlingLag
from srs_operator.services.controller import Controller, ObjectKey

#: Where ``main.configure`` puts the :class:`~srs_operator.liveness.HandlingLag` of the process.
LAG_MEMO_KEY: Final = "handling_lag"
#: Where each handler module keeps its controller: ``memo[CONTROLLERS_MEMO_KEY][kind]``.
CONTROLLERS_MEMO_KEY: Final = "controllers"
_UNSUBSCRIBE_MEMO_KEY: Final = "controllers-unsubscribe"


def first(index: Mapping[Any, Iterable[Any]], key: Any) -> Any:
    """The one value of ``key`` in a kopf index (keys that name one object), or None."""
    store = index.get(key)
    if not store:
        return None
    return next(iter(store))


class IndexCache:
    """A kopf index keyed by ``(namespace, name)`` as a controller's object cache."""

    def __init__(self, index: Mapping[Any, Iterable[Any]]) -> None:
        self._index = index

    def get(self, key: ObjectKey) -> Mapping[str, Any] | None:
        return first(self._index, key)  # type: ignore[no-any-return]

    def keys(self) -> Iterable[ObjectKey]:
        return list(self._index.keys())


def lag(memo: kopf.Memo) -> HandlingLag | None:
    found = memo.get(LAG_MEMO_KEY)
    return found if isinstance(found, HandlingLag) else None


def start(memo: kopf.Memo, controller: Controller) -> None:
    """The start protocol of every controller (``on.startup``): start its workers and re-check,
    keep it in the memo (the ``controllers`` probe checks it), and have it forget the objects of
    namespaces kopf stops watching."""
    controller.start()
    memo.setdefault(CONTROLLERS_MEMO_KEY, {})[controller.kind] = controller
    unsubscribe = kopf_patches.on_namespace_unwatched(controller.namespace_unwatched)
    memo.setdefault(_UNSUBSCRIBE_MEMO_KEY, {})[controller.kind] = unsubscribe


async def stop(memo: kopf.Memo, kind: str) -> None:
    """The stop protocol (``on.cleanup``): undo :func:`start`, close the controller's clients."""
    if (unsubscribe := (memo.get(_UNSUBSCRIBE_MEMO_KEY) or {}).pop(kind, None)) is not None:
        unsubscribe()
    if (controller := registered(memo, kind)) is not None:
        await controller.close()


def registered(memo: kopf.Memo, kind: str) -> Controller | None:
    found = (memo.get(CONTROLLERS_MEMO_KEY) or {}).get(kind)
    return found if isinstance(found, Controller) else None


C = TypeVar("C", bound=Controller)


def controller_of(memo: kopf.Memo, cls: type[C]) -> C:
    """The started controller of class ``cls`` (event handlers run only after every ``on.startup``)."""
    found = registered(memo, cls.kind)
    assert isinstance(found, cls), f"the {cls.kind} controller is not started"
    return found


@kopf.on.probe(id="controllers")
def controllers(memo: kopf.Memo, **_: Any) -> str:
    """Liveness: fails (HTTP 500 on the liveness endpoint) once a controller's worker or
    re-check loop has died."""
    found = memo.get(CONTROLLERS_MEMO_KEY) or {}
    if not found:
        return "starting"
    reports = []
    for controller in found.values():
        ok, why = controller.healthy()
        if not ok:
            raise kopf.PermanentError(why)
        reports.append(why)
    return "; ".join(reports)


@kopf.on.probe(id="watches")
def watches(memo: kopf.Memo, **_: Any) -> str:
    """Liveness: fails once a watched object has waited for its handler longer than the bound
    (kopf's watches are stuck: the operator would be deaf)."""
    found = lag(memo)
    if found is None:
        return "starting"
    stalled, why = found.stalled()
    if stalled:
        raise kopf.PermanentError(why)
    return why
