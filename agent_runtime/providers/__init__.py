"""LLM providers: what a role asks (classify, draft) and the back ends that answer.

``offline`` (the default) needs no network; ``anthropic``, ``openai``/``ollama`` and
``bedrock`` call real models through their official SDKs. :func:`build_provider` picks
one from the runtime config; the SDKs are imported only when their provider is used.
"""

from __future__ import annotations

from agent_runtime.providers.base import IncompleteDraftError, Provider, ProviderConfigError
from srs_contracts.agent_config import ModelConfig
from srs_contracts.agent_config import Provider as ProviderName

__all__ = ["IncompleteDraftError", "Provider", "ProviderConfigError", "build_provider"]


def build_provider(
    model: ModelConfig,
    *,
    agent: str,
    system_prompt: str | None = None,
    concurrency: int = 16,
) -> Provider:
    """The provider ``model`` configures, for the agent named ``agent``.

    ``system_prompt`` overrides the built-in one of the operation the role uses;
    ``concurrency`` sizes connection and thread pools. Raises
    :class:`ProviderConfigError` when the provider cannot be set up (e.g. its API key
    variable is missing).
    """
    if model.provider is ProviderName.OFFLINE:
        from agent_runtime.providers.offline import OfflineProvider

        return OfflineProvider(agent=agent, model=model.name, model_dir=model.model_dir)
    if model.provider is ProviderName.ANTHROPIC:
        from agent_runtime.providers.anthropic_api import AnthropicProvider

        return AnthropicProvider(model, agent=agent, system_prompt=system_prompt)
    if model.provider in (ProviderName.OPENAI, ProviderName.OLLAMA):
        from agent_runtime.providers.openai_api import OpenAICompatibleProvider

        return OpenAICompatibleProvider(
            model, agent=agent, provider_name=model.provider.value, system_prompt=system_prompt
        )
    if model.provider is ProviderName.BEDROCK:
        from agent_runtime.providers.bedrock import BedrockProvider

        return BedrockProvider(model, agent=agent, system_prompt=system_prompt, concurrency=concurrency)
    raise ProviderConfigError(f"unknown provider {model.provider!r}")
