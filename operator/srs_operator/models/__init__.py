"""Pydantic models of the custom resources; the single source of truth for ``crds/``."""
