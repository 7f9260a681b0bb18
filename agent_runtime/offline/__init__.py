"""The offline, LLM-free provider's brain: a triage classifier trained on a shipped ticket set.

Public API: :mod:`agent_runtime.offline.classifier` (``TicketClassifier``, ``Prediction``)
and :mod:`agent_runtime.offline.modelfile` (``load_default``: the shipped model, ``load``).
Training data and its provenance: :mod:`agent_runtime.offline.dataset`
and ``docs/offline-classifier.md``. Accuracy report: ``python -m
agent_runtime.offline.evaluate``.
"""
