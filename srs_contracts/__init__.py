"""What the operator and the agent runtime share, and nothing else: the contracts between them.

- :mod:`srs_contracts.agent_config` — the agent config document (``AgentConfig``): the
  operator renders it from a SupportAgent, the runtime validates and runs it;
- :mod:`srs_contracts.kafka_settings` — Kafka client settings from ``KAFKA_*`` (the
  operator's admin client and the agents' clients connect the same way);
- :mod:`srs_contracts.kafka_logging` — librdkafka's log through Python logging;
- :mod:`srs_contracts.backoff` — the one way srs waits before trying again;
- :mod:`srs_contracts.timestamps` — RFC 3339 timestamps as Kubernetes and the events write them.

Both ``srs_operator`` and ``agent_runtime`` import this package; ``make lint`` (lint-imports,
``pyproject.toml``) fails when the operator imports anything else of the runtime, or when
this package imports either of them.
"""
