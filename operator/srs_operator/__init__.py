"""The srs operator (import name ``srs_operator``; the folder is ``operator/`` but a bare
``operator`` import would shadow the standard library).

Layers, in the direction of imports: handlers (thin kopf functions, one concern each) →
builders (pure: CR model in, manifest dicts out) → clients (Kubernetes, Kafka admin: the
only I/O) → models (pydantic: CR spec/status; they generate the CRD YAML in ``crds/``).
"""
