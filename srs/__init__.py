"""srs — the Support Resolution System: AI support agents on Kubernetes and Kafka."""

__version__ = "0.1.0"
