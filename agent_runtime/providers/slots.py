"""Waiting for a free slot of a model server instead of timing out in its queue.

A local model server decodes a fixed number of requests at once (llama.cpp's
``--parallel``; it says how many in ``GET /props`` → ``total_slots``) and queues the rest.
A request queued there is already running against the client's timeout, so an agent
whose ``concurrency`` exceeds the server's slots turns a busy server into timeouts, then
retries, then dead letters. Here a process sends a server at most ``total_slots``
requests at once; the others wait *before* their call starts, so the call's deadline
(:func:`~agent_runtime.providers.base.call_within_deadline`) counts the model's work only.

Servers that do not answer ``/props`` with slots (hosted APIs, Ollama, vLLM) are not
limited here. The limit is per process and server: several agents on one server each get
the full count (the server queues the excess, which the generous timeouts of the
examples absorb).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.error
import urllib.request
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

log = logging.getLogger(__name__)

#: How long the one-time ``/props`` question may take.
PROBE_TIMEOUT_S: Final = 2.0


@dataclass
class _ServerState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: None: not asked yet (or the server did not answer); 0: no limit.
    total: int | None = None
    semaphore: asyncio.Semaphore | None = None
    waiting: int = 0


# Per event loop (asyncio primitives belong to one loop), per server.
_STATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _ServerState]] = weakref.WeakKeyDictionary()


class ServerSlots:
    """The slots of one server, shared by every provider of this process that calls it."""

    def __init__(self, base_url: str | None) -> None:
        self._root = base_url.rstrip("/").removesuffix("/v1") if base_url else None

    @classmethod
    def for_server(cls, base_url: str | None) -> ServerSlots:
        """Slots of the server at ``base_url`` (None: a hosted default, never limited)."""
        return cls(base_url)

    def _state(self) -> _ServerState | None:
        if self._root is None:
            return None
        servers = _STATES.setdefault(asyncio.get_running_loop(), {})
        return servers.setdefault(self._root, _ServerState())

    @property
    def limit(self) -> int | None:
        """The slot count in use in the running loop (None: unknown or unlimited)."""
        state = self._state()
        return state.total or None if state is not None else None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the server's slots for the block (no-op when the server has no limit)."""
        state = self._state()
        if state is None or self._root is None:
            yield
            return
        if state.total is None:
            async with state.lock:
                if state.total is None:
                    state.total = await _ask_slots(self._root)
                    if state.total:
                        state.semaphore = asyncio.Semaphore(state.total)
                        log.info("model server slots", extra={"server": self._root, "slots": state.total})
        if state.semaphore is None:
            yield
            return
        state.waiting += 1
        try:
            await state.semaphore.acquire()
        finally:
            state.waiting -= 1
        try:
            yield
        finally:
            state.semaphore.release()


async def _ask_slots(root: str) -> int | None:
    """``total_slots`` from ``GET {root}/props``: 0 when the server answers without it
    (not a llama.cpp server), None when it does not answer (ask again next time)."""
    return await asyncio.to_thread(_props_slots, root)


def _props_slots(root: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{root}/props", timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310 - base_url's server
            props = json.loads(response.read())
    except urllib.error.HTTPError:
        return 0
    except (OSError, ValueError):
        return None
    total = props.get("total_slots") if isinstance(props, dict) else None
    return total if isinstance(total, int) and total > 0 else 0
