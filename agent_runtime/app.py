"""One agent process: config → handler → engine, plus probes, JSON logs and signals.

``run`` is what ``srs agent --config FILE`` calls. SIGTERM or SIGINT starts a graceful
shutdown (stop fetching, drain, commit, exit 0 within the grace period); a watchdog
makes sure the process exits even if something hangs past it. Beside the engine: the
consumer-lag sampler (``agent_runtime/lag.py``) and, when the ``OTEL_*`` environment asks
for them, OpenTelemetry traces (``agent_runtime/traces.py``).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import inspect
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping

from agent_runtime import logs, metrics
from agent_runtime.engine import Engine, EngineSettings
from agent_runtime.lag import LagSampler
from agent_runtime.records import Handler
from agent_runtime.server import HealthServer
from srs_contracts import traces
from srs_contracts.agent_config import AgentConfig

log = logging.getLogger(__name__)

HandlerFactory = Callable[[AgentConfig], Handler]

DEFAULT_HANDLER_FACTORY = "agent_runtime.agent:build_handler"
#: After the grace period, how long the watchdog waits before it ends the process.
_WATCHDOG_MARGIN_S = 2.0


def load_handler_factory(spec: str = DEFAULT_HANDLER_FACTORY) -> HandlerFactory:
    """Import ``module:attribute``: a callable that builds the handler from the config."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"handler factory {spec!r} is not of the form module:attribute")
    factory = getattr(importlib.import_module(module_name), attribute)
    if not callable(factory):
        raise TypeError(f"handler factory {spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def tune_gc() -> None:
    """Garbage-collector settings for a long-running, allocation-heavy agent.

    Every record allocates a few short-lived containers; with the default young-generation
    threshold (700) the collector ran every ~100 records and took a quarter of the
    engine's CPU (measured: 7.6 → 5.8 µs per record in the dispatcher). The young
    generation's count is allocations minus deallocations, and an exactly-once agent keeps
    each record's ~15 containers (record, work, outputs, delivery callback, …) alive until
    its transaction commits — a round holds a thousand records or more — so at 10,000 the
    collector still ran every ~700 records, walking held records that were about to be freed
    anyway (3–4 µs per echoed record, 29 collections in 20,000; at 100,000: one, ≤ 1 µs). At
    most ~100,000 objects of cyclic garbage wait for a collection (a few MB). Objects alive
    at start-up (modules, the handler, the offline model) are frozen out of collections.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 10, 10)


def run(
    config: AgentConfig,
    *,
    handler_factory: HandlerFactory | None = None,
    grace_period_s: float | None = None,
    env: Mapping[str, str] | None = None,
    log_level: str = "INFO",
) -> int:
    """Run the agent until SIGTERM/SIGINT; the process's exit code."""
    logs.configure(config.name, log_level, writer_thread=True)
    traces.configure(config.name, env)
    settings = EngineSettings.from_agent_config(config, env, shutdown_grace_s=grace_period_s)
    return asyncio.run(serve(config, settings, handler_factory or load_handler_factory()))


async def serve(config: AgentConfig, settings: EngineSettings, handler_factory: HandlerFactory) -> int:
    """Build the handler inside the running loop (its clients bind to it) and run the engine.

    Returns 2 when the handler cannot be built (a configuration problem: retrying will not help).
    """
    loop = asyncio.get_running_loop()
    watchdog: list[threading.Timer] = []
    engine: Engine | None = None
    stop_requested = False

    def on_signal(signum: int) -> None:
        nonlocal stop_requested
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        stop_requested = True
        if engine is not None:
            engine.stop()
        if not watchdog:
            watchdog.append(_start_watchdog(settings.shutdown_grace_s + _WATCHDOG_MARGIN_S))

    # Before the handler is built (a model loads): a pod stopped while it starts exits cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    server = None
    lag: LagSampler | None = None
    handler: Handler | None = None
    try:
        try:
            handler = handler_factory(config)
        except Exception as e:
            log.exception("cannot build the agent's handler", extra={"error": type(e).__name__})
            return 2
        tune_gc()
        engine = Engine(settings, handler)
        if stop_requested:
            engine.stop()
        server = HealthServer(engine, metrics.REGISTRY, config.server.port).start()
        lag = LagSampler(config.name, settings.input_topic, settings.consumer_config()).start()
        code = await engine.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if server is not None:
            server.stop()
        if lag is not None:
            lag.stop()
        if handler is not None:
            await _close(handler)
        traces.shutdown()
        for timer in watchdog:
            timer.cancel()
    return code


def _start_watchdog(after_s: float) -> threading.Timer:
    def force_exit() -> None:
        # Nothing is lost: whatever did not commit is redelivered to the next owner.
        log.error("shutdown overran the grace period; exiting without a clean close", extra={"after_s": after_s})
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(after_s, force_exit)
    timer.daemon = True
    timer.start()
    return timer


async def _close(handler: Handler) -> None:
    """Let a handler release its clients (``aclose()`` or ``close()``, if it has one)."""
    for name in ("aclose", "close"):
        close = getattr(handler, name, None)
        if callable(close):
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception as e:  # noqa: BLE001 - shutting down anyway; say so and go on
                log.warning("closing the handler failed", extra={"error": type(e).__name__})
            return
