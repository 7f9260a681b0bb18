"""Builders: pure functions from a parsed custom resource to desired manifests and status (no I/O)."""
