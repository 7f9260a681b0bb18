"""The Kafka engine: consumes records, runs a ``Handler`` on them, produces its outputs.

It knows records, offsets and partitions — nothing about tickets. Reading order:
``consumer`` (fetch thread, rebalances) → ``dispatcher`` (concurrency, per-key order,
retries, dead letters, ``offsets``) → ``producer`` (idempotent, batched, acknowledged).
``Engine`` wires them and runs the life cycle; ``EngineSettings`` holds what it needs.
"""

from agent_runtime.engine.engine import Engine
from agent_runtime.engine.settings import EngineSettings
from agent_runtime.traceparent import current_trace_id

__all__ = ["Engine", "EngineSettings", "current_trace_id"]
