"""Handlers: thin kopf functions, one concern each; they delegate to services and builders."""
