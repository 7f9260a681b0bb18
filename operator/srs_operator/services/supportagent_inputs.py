"""What a SupportAgent's desired state is computed from, besides its spec.

The prompt text (``spec.prompt.configMapKeyRef``), the digest of the trained offline model
(``spec.model.offline.modelRef``) and the versions of the referenced Secrets. ConfigMaps are
fetched only when their ``resourceVersion`` (from the watch-fed cache) moved; Secrets come
as metadata only (:mod:`srs_operator.clients.secrets`). :class:`Dependencies` records whom
an agent depends on, so that a change of one of them re-queues exactly the agents that read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from srs_operator.builders.supportagent import all_secret_refs, offline_model_ref
from srs_operator.builders.supportagent_status import Verdict
from srs_operator.clients.kube import CONFIGMAPS, KubeClient
from srs_operator.clients.secrets import SecretsForbidden
from srs_operator.models.supportagent import Reason, SecretVersion, SupportAgent
from srs_operator.services.written import resource_version
from srs_operator.settings import OperatorSettings


class ConfigMapVersions(Protocol):
    """``resourceVersion`` of every ConfigMap, from a watch (None: no such ConfigMap)."""

    def config_map_version(self, namespace: str, name: str) -> str | None: ...


class SecretVersionSource(Protocol):
    """Versions of the Secrets in a namespace (metadata-only watches in production)."""

    async def of(self, namespace: str) -> Mapping[str, SecretVersion]: ...


@dataclass(frozen=True)
class Dependencies:
    """What an agent's desired state was computed from (to know whom a change concerns)."""

    secrets: frozenset[str] = frozenset()
    #: ConfigMaps it reads: the prompt's, the trained offline model's.
    config_maps: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Inputs:
    """Everything :func:`~srs_operator.builders.supportagent.build_desired` needs besides the spec."""

    prompt: str | None = None
    model_digest: str | None = None
    secrets: Mapping[str, SecretVersion | None] = field(default_factory=dict)
    #: Why the operator may not read the namespace's Secrets (None: it may).
    secrets_forbidden: str | None = None
    #: Why the spec cannot be applied yet (a referenced ConfigMap is missing); None: it can.
    refused: Verdict | None = None
    dependencies: Dependencies = Dependencies()


#: A ConfigMap's resourceVersion, data and binaryData.
_ConfigMapData = tuple[str | None, Mapping[str, str], Mapping[str, str]]


class AgentInputs:
    """Reads the inputs of agents, fetching a ConfigMap again only when its version moved."""

    def __init__(
        self,
        kube: KubeClient,
        versions: ConfigMapVersions,
        secrets: SecretVersionSource,
        settings: OperatorSettings | None = None,
    ) -> None:
        self._kube = kube
        self._settings = settings or OperatorSettings()
        self._versions = versions
        self.secrets = secrets
        self._config_maps: dict[tuple[str, str], _ConfigMapData] = {}

    async def of(self, agent: SupportAgent) -> Inputs:
        namespace = agent.namespace
        refused: Verdict | None = None
        prompt: str | None = None
        cm_ref = agent.spec.prompt.config_map_key_ref if agent.spec.prompt is not None else None
        if cm_ref is not None:
            prompt = await self._value(namespace, cm_ref.name, cm_ref.key)
            if prompt is None:
                refused = Verdict.false(
                    Reason.PROMPT_NOT_FOUND,
                    f"spec.prompt.configMapKeyRef: ConfigMap {cm_ref.name} with key {cm_ref.key} not found",
                )
        model_ref = offline_model_ref(agent.spec.model)
        model_digest: str | None = None
        if model_ref is not None:
            value = await self._value(namespace, model_ref.name, model_ref.key, binary=True)
            model_digest = None if value is None else hashlib.sha256(value.encode()).hexdigest()
            if model_digest is None and refused is None:
                refused = Verdict.false(
                    Reason.OFFLINE_MODEL_NOT_FOUND,
                    f"spec.model.offline.modelRef: ConfigMap {model_ref.name} with key {model_ref.key} not found "
                    "(create it from srs train's output: kubectl create configmap NAME --from-file=model.json.gz)",
                )
        refs = all_secret_refs(agent, self._settings)
        secrets: dict[str, SecretVersion | None] = {r.name: None for r in refs}
        forbidden: str | None = None
        if refs:
            try:
                versions = await self.secrets.of(namespace)
            except SecretsForbidden as e:
                forbidden = str(e)
            else:
                secrets = {r.name: versions.get(r.name) for r in refs}
        dependencies = Dependencies(
            secrets=frozenset(secrets),
            config_maps=frozenset(ref.name for ref in (cm_ref, model_ref) if ref is not None),
        )
        return Inputs(prompt, model_digest, secrets, forbidden, refused, dependencies)

    async def _value(self, namespace: str, name: str, key: str, *, binary: bool = False) -> str | None:
        """One key of a ConfigMap, from ``data`` (or, for a trained model, also ``binaryData``)."""
        found = await self._config_map(namespace, name)
        if found is None:
            return None
        return found[1].get(key, found[2].get(key) if binary else None)

    async def _config_map(self, namespace: str, name: str) -> _ConfigMapData | None:
        version = self._versions.config_map_version(namespace, name)
        if version is None:
            return None
        cached = self._config_maps.get((namespace, name))
        if cached is None or cached[0] != version:
            obj = await self._kube.get(CONFIGMAPS, namespace, name)
            if obj is None:
                return None
            cached = (resource_version(obj), dict(obj.get("data") or {}), dict(obj.get("binaryData") or {}))
            self._config_maps[(namespace, name)] = cached
        return cached
