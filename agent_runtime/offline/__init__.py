"""The offline, LLM-free provider's brain: a triage classifier trained on a shipped ticket set.

Public API: :mod:`agent_runtime.offline.classifier` (``TicketClassifier``, ``Prediction``)
and :mod:`agent_runtime.offline.modelfile` (``load_default``: the shipped model, ``load``).
Training data and its provenance: :mod:`srs_training.dataset`
and ``docs/offline-classifier.md``. Accuracy report: ``python -m
srs_training.evaluate``.
"""
