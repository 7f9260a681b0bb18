"""Clients: the only modules that do I/O (Kafka admin; Kubernetes beyond what kopf does)."""
