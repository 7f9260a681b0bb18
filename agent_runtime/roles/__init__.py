"""Roles: what an agent does with one ticket — triage it, or answer it as a specialist.

A role takes tickets and decisions, asks its provider, applies the rules that must hold
whatever the model says (the routing table, the guardrails) and returns an outcome. It
never talks to Kafka; :mod:`agent_runtime.agent` turns outcomes into events.
"""
