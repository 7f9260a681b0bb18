"""The runtime-config document: the contract between the operator and the runtime.

The operator renders one ``AgentConfig`` per ``SupportAgent`` into a ConfigMap (key
``agent.yaml``); ``srs agent --config FILE`` validates it with this model. Secrets never
appear here: the document names the *environment variable* that carries an API key, and
the operator fills that variable from a ``secretKeyRef``.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, Literal, Self

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

API_VERSION: Final = "srs.dev/v1alpha1"
KIND: Final = "AgentRuntimeConfig"
#: Key of the document in the operator-rendered ConfigMap.
CONFIG_KEY = "agent.yaml"


def _render_yaml(document: object) -> str:
    return yaml.safe_dump(document, sort_keys=False)


@functools.lru_cache(maxsize=4096)
def _rendered_yaml(document_json: bytes) -> str:
    """The YAML text of a config document, by its JSON (key order kept). PyYAML's emitter is
    pure Python (~2 ms a config) and the operator renders every agent's config on every
    reconcile, nearly always the same one; libyaml's emitter is faster but wraps long quoted
    strings differently, and a changed text would roll every agent's pods."""
    return _render_yaml(orjson.loads(document_json))


class TicketType(StrEnum):
    """What a ticket is about; each type has a specialist."""

    BILLING = "billing"
    TECHNICAL = "technical"
    FEATURE_REQUEST = "feature_request"
    ACCOUNT = "account"
    OTHER = "other"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Role(StrEnum):
    TRIAGE = "triage"
    SPECIALIST = "specialist"


class Provider(StrEnum):
    """LLM back ends. ``offline`` needs no network and is the default."""

    OFFLINE = "offline"
    ANTHROPIC = "anthropic"
    OPENAI = "openai"  # any OpenAI-compatible server
    OLLAMA = "ollama"  # OpenAI-compatible API of Ollama
    BEDROCK = "bedrock"


TopicName = Annotated[str, Field(min_length=1, max_length=249, pattern=r"^[a-zA-Z0-9._-]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ModelConfig(_Model):
    """Which LLM to call and how."""

    provider: Provider = Provider.OFFLINE
    name: str = Field("offline-v1", description="Model name/id as the provider knows it.")
    base_url: str | None = Field(None, description="Endpoint override (OpenAI-compatible servers, proxies).")
    region: str | None = Field(None, description="AWS region (bedrock).")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (filled from a Secret)."
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(1024, ge=1, le=200_000)
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    max_retries: int = Field(3, ge=0, le=20, description="SDK-level retries of one call (honouring retry-after).")
    model_dir: str | None = Field(
        None,
        description="Provider offline: directory holding a model trained by srs train (model.json.gz); "
        "unset → the model the project ships.",
    )


class Delivery(StrEnum):
    """What a crash may cost: nothing (``exactly-once``) or a repeated output (``at-least-once``)."""

    EXACTLY_ONCE = "exactly-once"
    AT_LEAST_ONCE = "at-least-once"


class KafkaConfig(_Model):
    """How the agent reaches Kafka. Client settings that vary per cluster (SASL, TLS) come
    from ``KAFKA_*`` environment variables, not from this document."""

    bootstrap_servers: str | None = Field(
        None, description="Defaults to the KAFKA_BOOTSTRAP_SERVERS environment variable."
    )
    group_id: str = Field(min_length=1, description="Consumer group; replicas of one agent share it.")
    input_topic: TopicName
    dead_letter_topic: TopicName = "ticket.dlq"
    delivery: Delivery = Field(
        Delivery.EXACTLY_ONCE,
        description="exactly-once: outputs and input offsets commit together in a Kafka transaction, "
        "so a crash never repeats an output (needs a broker with transactions); at-least-once: "
        "outputs are written at once and a crash may repeat some.",
    )
    commit_interval_ms: int = Field(
        100, ge=1, le=60_000, description="exactly-once: a transaction commits what is ready at least this often."
    )
    commit_max_records: int = Field(
        1000, ge=1, le=100_000, description="exactly-once: … and as soon as this many inputs are ready."
    )


class RetryPolicy(_Model):
    """Retries of one input around transient failures, before it goes to the dead-letter topic."""

    max_attempts: int = Field(5, ge=1, le=100)
    initial_backoff_ms: int = Field(200, ge=1)
    max_backoff_ms: int = Field(30_000, ge=1)
    handler_timeout_seconds: float = Field(
        120.0, gt=0, le=3600,
        description="Deadline of one attempt at one record; a miss counts as a failed attempt "
        "(retried, then dead-lettered with reason timeout).",
    )  # fmt: skip
    crash_loop_limit: int = Field(
        3, ge=1, le=100,
        description="A record that crashed or hung this many agent processes is dead-lettered (crash_loop).",
    )  # fmt: skip


class TriageConfig(_Model):
    """Where triage sends each decision. Nothing can be routed outside this table."""

    routes: dict[TicketType, TopicName] = Field(description="Ticket type → specialist topic.")
    human_topic: TopicName = "ticket.triaged.human"
    confidence_threshold: float = Field(0.85, ge=0.0, le=1.0, description="Below this → human queue.")
    fallback_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="With a fallback model: below this the fallback's decision goes to the human queue too. "
        "Defaults to confidence_threshold.",
    )


class SpecialistConfig(_Model):
    """Where a specialist sends its work."""

    specialty: TicketType
    output_topic: TopicName = "ticket.resolved"
    human_topic: TopicName = Field("ticket.triaged.human", description="Drafts that fail the guardrails go here.")


#: What enrichment copies from a customer item unless the config says otherwise.
DEFAULT_CUSTOMER_ATTRIBUTES: Final = (
    "customer_id", "name", "first_name", "email", "tier", "plan", "seats", "mrr", "country", "language", "tags",
)  # fmt: skip


class EnrichmentConfig(_Model):
    """Optional customer lookup in DynamoDB during triage; failures degrade, never block."""

    table: str = Field(min_length=3, max_length=255)
    region: str = "us-east-1"
    endpoint_url: str | None = None
    key_attribute: str = "customer_id"
    timeout_seconds: float = Field(1.0, gt=0, le=30)
    cache_ttl_seconds: int = Field(300, ge=0)
    attributes: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=lambda: list(DEFAULT_CUSTOMER_ATTRIBUTES),
        max_length=50,
        description="The item attributes copied into events and prompts; any other attribute is never read.",
    )


class GuardrailConfig(_Model):
    """Checks a drafted response must pass before it reaches a customer."""

    max_length: int = Field(4000, ge=1)
    forbidden_phrases: list[str] = Field(default_factory=list)
    block_pii: bool = Field(True, description="Reject drafts containing card numbers, SSNs, secrets, …")


class ServerConfig(_Model):
    """The health/metrics HTTP endpoint (/healthz, /readyz, /metrics)."""

    port: int = Field(8080, ge=1, le=65535)


class AgentConfig(_Model):
    """One agent process: its role, model, topic wiring and limits."""

    api_version: Literal["srs.dev/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["AgentRuntimeConfig"] = KIND
    name: str = Field(min_length=1, description="The SupportAgent's name; shows in events, logs and metrics.")
    namespace: str = "default"
    role: Role
    model: ModelConfig = ModelConfig()
    fallback_model: ModelConfig | None = Field(
        None,
        description="Role triage: the model asked only when `model` is not sure (confidence below "
        "triage.confidence_threshold, or no type); e.g. an LLM behind the offline classifier.",
    )
    system_prompt: str | None = Field(None, description="Overrides the role's built-in system prompt.")
    kafka: KafkaConfig
    triage: TriageConfig | None = None
    specialist: SpecialistConfig | None = None
    enrichment: EnrichmentConfig | None = None
    guardrails: GuardrailConfig = GuardrailConfig()
    concurrency: int = Field(16, ge=1, le=1024, description="Tickets in flight in one process.")
    retry: RetryPolicy = RetryPolicy()
    server: ServerConfig = ServerConfig()

    @model_validator(mode="after")
    def _role_section_present(self) -> Self:
        if self.role is Role.TRIAGE and self.triage is None:
            raise ValueError("role 'triage' needs a 'triage' section (routes, human_topic)")
        if self.role is Role.SPECIALIST and self.specialist is None:
            raise ValueError("role 'specialist' needs a 'specialist' section (specialty, output_topic)")
        if self.role is not Role.TRIAGE and self.fallback_model is not None:
            raise ValueError("fallback_model is only for role 'triage'")
        return self

    def output_topics(self) -> set[str]:
        """Every topic this agent may write to (dead-letter included)."""
        topics = {self.kafka.dead_letter_topic}
        if self.triage is not None:
            topics |= set(self.triage.routes.values()) | {self.triage.human_topic}
        if self.specialist is not None:
            topics |= {self.specialist.output_topic, self.specialist.human_topic}
        return topics

    def to_yaml(self) -> str:
        """The document as the operator renders it (stable key order, no unset noise)."""
        document = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        try:
            key = orjson.dumps(document)
        except TypeError:  # an integer past 64 bits: render it without the cache
            return _render_yaml(document)
        return _rendered_yaml(key)

    @classmethod
    def from_yaml(cls, text: str) -> AgentConfig:
        return cls.model_validate(yaml.safe_load(text))

    @classmethod
    def load(cls, path: str | Path) -> AgentConfig:
        return cls.from_yaml(Path(path).read_text())
