"""The generic agent runtime: one code base (and one image) for every agent role.

Reading order: consumer loop (``engine``) → dispatcher (concurrency, ordering, offsets)
→ role (triage / specialist) → provider (LLM) → producer. A role never talks to Kafka;
the Kafka engine never knows what a ticket is. The runtime reads its role, model and
topic wiring from one config document (:mod:`srs_contracts.agent_config`) that the operator
renders from a ``SupportAgent``.
"""
