"""Training and evaluating the offline triage classifier: tools, not what an agent loads.

An agent loads only ``agent_runtime/offline/`` (features, naive Bayes, the classifier and
its model file). Everything that builds or judges a model lives here: the labelled ticket
set (``dataset``, ``data/``), the ticket generator (``generate``, ``scenarios.txt``),
fitting and calibration (``training``; ``make model`` rebuilds the shipped model),
accuracy reports (``evaluate``) and the ``srs train`` / ``srs eval`` commands (``cli``).
The runtime never imports this package (an import-linter contract).
"""
