"""The ``SupportAgent`` custom resource: one AI support agent (triage or specialist).

The spec is deliberately small (no embedded PodSpec): what the agent does (role,
specialty, model, prompt), its topic wiring, and a few knobs for the pods it runs in.
Fields left unset take the runtime's defaults (``srs_contracts.agent_config``), which the
descriptions quote, so a default lives in one place. CEL rules reject, at admission,
combinations that cannot work, with a message that says what to change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Annotated, Any, Final

from pydantic import Field, WithJsonSchema

from srs_contracts.agent_config import (
    Delivery,
    EnrichmentConfig,
    GuardrailConfig,
    ModelConfig,
    Provider,
    Role,
    TicketType,
    TopicName,
    TriageConfig,
)
from srs_operator.models.conditions import Condition
from srs_operator.models.crd import (
    CustomResourceKind,
    PrinterColumn,
    ResourceModel,
    Rule,
    ScaleSubresource,
    validations,
)

_TICKET_TYPES: Final = ", ".join(t.value for t in TicketType)
_TICKET_TYPES_CEL: Final = "[" + ", ".join(f"'{t.value}'" for t in TicketType) + "]"

DNS_SUBDOMAIN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: Kubernetes resource quantity (``500m``, ``1Gi``, ``2``).
QUANTITY_PATTERN: Final = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


def _default(model: type[ResourceModel] | Any, field: str) -> str:
    """``Defaults to X.`` for a description, read from the runtime's model (one place for defaults)."""
    value = model.model_fields[field].default
    if isinstance(value, Enum):
        value = value.value
    return f"Defaults to {value if isinstance(value, str) else json.dumps(value)}."


class SecretKeySelector(ResourceModel):
    """A key of a Secret in the agent's namespace."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key in the Secret.")


class ConfigMapKeySelector(ResourceModel):
    """A key of a ConfigMap in the agent's namespace."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the ConfigMap.")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key in the ConfigMap.")


def _model_rules(path: str) -> tuple[Rule, ...]:
    """CEL rules of a model section; ``path`` (``spec.model``, ``spec.fallbackModel``) names it in messages."""
    return (
        Rule(
            "self.provider == 'offline' || has(self.name)",
            f"{path}.name is required unless the provider is offline: set the model id the provider "
            "knows, e.g. claude-sonnet-4-5 (anthropic), gpt-4o-mini (openai), llama3.1 (ollama)",
            field_path=".name",
            reason="FieldValueRequired",
        ),
        Rule(
            "self.provider != 'anthropic' || has(self.apiKeySecretRef)",
            f"provider anthropic needs {path}.apiKeySecretRef: the name and key of a Secret holding the API key",
            field_path=".apiKeySecretRef",
            reason="FieldValueRequired",
        ),
        Rule(
            "self.provider != 'openai' || has(self.apiKeySecretRef) || has(self.baseURL)",
            f"provider openai needs {path}.apiKeySecretRef (a Secret with the API key), or {path}.baseURL "
            "pointing at a self-hosted OpenAI-compatible server that needs no key",
            field_path=".apiKeySecretRef",
            reason="FieldValueRequired",
        ),
        Rule(
            "self.provider != 'offline' || !has(self.apiKeySecretRef)",
            f"provider offline calls no API: remove {path}.apiKeySecretRef",
            field_path=".apiKeySecretRef",
            reason="FieldValueForbidden",
        ),
        Rule(
            "self.provider != 'ollama' || has(self.baseURL)",
            f"provider ollama needs {path}.baseURL: the address of your Ollama server's OpenAI-compatible "
            "API, e.g. http://ollama.ollama.svc:11434/v1",
            field_path=".baseURL",
            reason="FieldValueRequired",
        ),
        Rule(
            "!has(self.baseURL) || self.provider in ['anthropic', 'openai', 'ollama']",
            f"{path}.baseURL is only used by providers anthropic, openai and ollama: remove it",
            field_path=".baseURL",
            reason="FieldValueForbidden",
        ),
        Rule(
            "self.provider != 'bedrock' || has(self.region)",
            f"provider bedrock needs {path}.region: the AWS region of Bedrock, e.g. us-east-1",
            field_path=".region",
            reason="FieldValueRequired",
        ),
        Rule(
            "!has(self.region) || self.provider == 'bedrock'",
            f"{path}.region is only used by provider bedrock: remove it",
            field_path=".region",
            reason="FieldValueForbidden",
        ),
        Rule(
            "!has(self.offline) || self.provider == 'offline'",
            f"{path}.offline configures the offline classifier: remove it, or set provider: offline",
            field_path=".offline",
            reason="FieldValueForbidden",
        ),
    )


class OfflineModelSpec(ResourceModel):
    """The offline provider's classifier: a model trained with ``srs train`` instead of the shipped one."""

    model_ref: ConfigMapKeySelector | None = Field(
        None,
        description="A ConfigMap key holding the model (model.json.gz from srs train --output DIR; "
        "kubectl create configmap NAME --from-file=DIR/model.json.gz). Mounted into the pods; a changed "
        "model rolls them. Unset: the model the project ships.",
    )


class ModelSpec(ResourceModel):
    """Which LLM the agent calls and how. The API key reaches the pod only as an
    environment variable filled from the Secret; it never appears in the rendered config."""

    model_config = ResourceModel.model_config | {"json_schema_extra": validations(*_model_rules("spec.model"))}

    provider: Provider = Field(description="LLM back end. offline needs no network (deterministic, for tests).")
    name: str | None = Field(
        None, min_length=1, max_length=256, description="Model id as the provider knows it, e.g. claude-sonnet-4-5."
    )
    base_url: str | None = Field(
        None,
        alias="baseURL",
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="Endpoint override: OpenAI-compatible servers, Ollama, proxies.",
    )
    api_key_secret_ref: SecretKeySelector | None = Field(
        None, description="Secret key holding the API key; injected as an environment variable, never rendered."
    )
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description=f"Sampling temperature. {_default(ModelConfig, 'temperature')}"
    )
    max_tokens: int | None = Field(
        None, ge=1, le=200_000, description=f"Upper bound on tokens per answer. {_default(ModelConfig, 'max_tokens')}"
    )
    timeout_seconds: float | None = Field(
        None, gt=0, le=600, description=f"Timeout of one LLM call. {_default(ModelConfig, 'timeout_seconds')}"
    )
    region: str | None = Field(
        None, max_length=32, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$", description="AWS region (provider bedrock)."
    )
    offline: OfflineModelSpec | None = Field(None, description="Provider offline: which trained classifier to use.")


class FallbackModelSpec(ModelSpec):
    """A second model behind ``spec.model`` (role triage): it is asked only about the tickets
    ``spec.model`` is not sure of, e.g. an LLM behind the offline classifier. What neither is
    sure of goes to ``spec.humanTopic``."""

    model_config = ResourceModel.model_config | {"json_schema_extra": validations(*_model_rules("spec.fallbackModel"))}

    confidence_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Below this confidence the fallback model's decision goes to humanTopic too. "
        "Defaults to spec.confidenceThreshold.",
    )


class PromptSpec(ResourceModel):
    """The system prompt that replaces the role's built-in one: inline text or a ConfigMap key.
    A change to the referenced ConfigMap rolls the pods."""

    model_config = ResourceModel.model_config | {
        "json_schema_extra": validations(
            Rule(
                "has(self.inline) != has(self.configMapKeyRef)",
                "spec.prompt needs exactly one of inline (the text) or configMapKeyRef (a ConfigMap key holding it)",
            )
        )
    }

    inline: str | None = Field(None, min_length=1, max_length=65_536, description="The prompt text.")
    config_map_key_ref: ConfigMapKeySelector | None = Field(None, description="A ConfigMap key holding the prompt.")


class EnvVarSecretSource(ResourceModel):
    """Where an environment variable's value comes from; only Secret keys are supported."""

    secret_key_ref: SecretKeySelector = Field(description="A key of a Secret in the agent's namespace.")


class EnvVar(ResourceModel):
    """An extra environment variable of the agent container: a literal value or a Secret key."""

    model_config = ResourceModel.model_config | {
        "json_schema_extra": validations(
            Rule(
                "has(self.value) != has(self.valueFrom)",
                "each spec.env entry needs exactly one of value or valueFrom.secretKeyRef",
            ),
            Rule(
                "!self.name.startsWith('SRS_')",
                "environment variables starting with SRS_ are reserved for the operator: choose another name",
                field_path=".name",
            ),
        )
    }

    name: str = Field(max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable name.")
    value: str | None = Field(None, max_length=4096, description="Literal value (never a secret: use valueFrom).")
    value_from: EnvVarSecretSource | None = Field(None, description="Take the value from a Secret key.")


class Resources(ResourceModel):
    """CPU, memory and ephemeral-storage requests and limits of the agent container."""

    model_config = ResourceModel.model_config | {
        "json_schema_extra": validations(
            Rule(
                "(!has(self.requests) || self.requests.all(k, k in ['cpu', 'memory', 'ephemeral-storage'])) && "
                "(!has(self.limits) || self.limits.all(k, k in ['cpu', 'memory', 'ephemeral-storage']))",
                "spec.resources requests and limits take only cpu, memory and ephemeral-storage",
            )
        )
    }

    requests: dict[str, Quantity] | None = Field(None, max_length=3, description="e.g. {cpu: 100m, memory: 256Mi}")
    limits: dict[str, Quantity] | None = Field(None, max_length=3, description="e.g. {memory: 512Mi}")


class EnrichmentSpec(ResourceModel):
    """Customer lookup in DynamoDB during triage. Failures degrade triage, never block it.
    AWS credentials come from the pod's identity (e.g. IRSA via serviceAccountAnnotations)."""

    table: str = Field(min_length=3, max_length=255, pattern=r"^[a-zA-Z0-9_.-]+$", description="DynamoDB table.")
    region: str | None = Field(
        None, max_length=32, description=f"AWS region of the table. {_default(EnrichmentConfig, 'region')}"
    )
    endpoint_url: str | None = Field(
        None, alias="endpointURL", max_length=2048, pattern=r"^https?://[^\s]+$", description="Endpoint override."
    )
    key_attribute: str | None = Field(
        None,
        max_length=255,
        description=f"Partition key holding the customer id. {_default(EnrichmentConfig, 'key_attribute')}",
    )
    timeout_seconds: float | None = Field(
        None, gt=0, le=30, description=f"Timeout of one lookup. {_default(EnrichmentConfig, 'timeout_seconds')}"
    )
    cache_ttl_seconds: int | None = Field(
        None,
        alias="cacheTTLSeconds",
        ge=0,
        le=86_400,
        description=f"How long a lookup is cached. {_default(EnrichmentConfig, 'cache_ttl_seconds')}",
    )


class GuardrailsSpec(ResourceModel):
    """Checks a drafted response must pass before it reaches a customer; a draft that fails
    goes to the human topic."""

    max_length: int | None = Field(
        None, ge=1, le=100_000, description=f"Longest draft allowed. {_default(GuardrailConfig, 'max_length')}"
    )
    forbidden_phrases: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        None, max_length=100, description="Phrases a draft must not contain (case-insensitive)."
    )
    block_pii: bool | None = Field(
        None,
        alias="blockPII",
        description=f"Reject drafts with card numbers, SSNs, secrets. {_default(GuardrailConfig, 'block_pii')}",
    )


#: Defaults of spec.autoscaling: KEDA's own (and the HPA's scale-down stabilization window).
DEFAULT_LAG_THRESHOLD: Final = 10
DEFAULT_COOLDOWN_SECONDS: Final = 300
DEFAULT_POLLING_SECONDS: Final = 30


class AutoscalingSpec(ResourceModel):
    """Who owns the replica count: the operator (``spec.replicas``), KEDA on the input's
    consumer lag (``maxReplicas`` set: the operator renders a ScaledObject), or another
    autoscaler (``externallyManaged``)."""

    model_config = ResourceModel.model_config | {
        "json_schema_extra": validations(
            Rule(
                "!(has(self.externallyManaged) && self.externallyManaged) || !has(self.maxReplicas)",
                "spec.autoscaling: either externallyManaged (another autoscaler owns the replicas) or maxReplicas "
                "(the operator scales with KEDA on consumer lag), not both",
                field_path=".externallyManaged",
                reason="FieldValueForbidden",
            ),
            Rule(
                "has(self.maxReplicas) || !(has(self.minReplicas) || has(self.lagThreshold) || "
                "has(self.activationLagThreshold) || has(self.cooldownSeconds) || has(self.pollingSeconds))",
                "spec.autoscaling.maxReplicas is required to scale on consumer lag (minReplicas, lagThreshold, "
                "activationLagThreshold, cooldownSeconds and pollingSeconds tune it)",
                field_path=".maxReplicas",
                reason="FieldValueRequired",
            ),
            Rule(
                "!has(self.maxReplicas) || !has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
                "spec.autoscaling.minReplicas must not be above maxReplicas",
                field_path=".minReplicas",
            ),
        )
    }

    externally_managed: bool = Field(
        False,
        description="An autoscaler (HPA, KEDA) scales the agent's Deployment directly: the operator never writes "
        "the Deployment's replicas. Autoscalers that target this SupportAgent's scale subresource need no flag.",
    )
    min_replicas: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="Fewest pods when scaling on lag; 0 scales to zero while the input topic has nothing to read "
        "(the first new ticket brings one pod back). Defaults to 1.",
    )
    max_replicas: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Most pods when scaling on lag. Setting it makes the operator render a KEDA ScaledObject on the "
        "agent's consumer group and input topic (KEDA must be installed). Capped at the input topic's partitions: "
        "a consumer beyond them would get no partition.",
    )
    lag_threshold: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Tickets waiting per pod that the scaler aims for: pods = ceil(lag / lagThreshold). "
        f"Defaults to {DEFAULT_LAG_THRESHOLD}.",
    )
    activation_lag_threshold: int | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="Lag above which an agent scaled to zero starts again (minReplicas 0). Defaults to 0: the first "
        "ticket.",
    )
    cooldown_seconds: int | None = Field(
        None,
        ge=0,
        le=86_400,
        description="How long the lag must stay low before pods are removed (scale-down stabilization, and the "
        f"wait before scaling to zero). Defaults to {DEFAULT_COOLDOWN_SECONDS}.",
    )
    polling_seconds: int | None = Field(
        None,
        ge=1,
        le=3600,
        description=f"How often the lag is read. Defaults to {DEFAULT_POLLING_SECONDS}.",
    )

    @property
    def on_lag(self) -> bool:
        """Whether the operator scales the agent with KEDA (``maxReplicas`` set)."""
        return self.max_replicas is not None

    @property
    def owns_replicas(self) -> bool:
        """Whether something other than the operator sets the Deployment's replicas."""
        return self.externally_managed or self.on_lag


class KafkaCredentialsSecret(ResourceModel):
    """A Secret in the agent's namespace holding the SASL credentials the agent connects with."""

    model_config = ResourceModel.model_config | {
        "json_schema_extra": validations(
            Rule(
                "!(has(self.username) && has(self.usernameKey))",
                "spec.kafka.credentialsSecret: set either username (the name itself, e.g. a Strimzi KafkaUser's "
                "name) or usernameKey (the Secret's key holding it), not both",
                field_path=".username",
                reason="FieldValueForbidden",
            ),
        )
    }

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the Secret.")
    username_key: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key holding the SASL username. Defaults to username (unless spec.kafka.credentialsSecret."
        "username names the user).",
    )
    password_key: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key holding the SASL password. Defaults to password (a Strimzi KafkaUser's Secret has it).",
    )
    username: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="The SASL username itself, for Secrets that hold only the password (Strimzi's KafkaUser "
        "Secret: the user is named like the KafkaUser).",
    )

    @property
    def password_key_or_default(self) -> str:
        return self.password_key or "password"


class KafkaSpec(ResourceModel):
    """How the agent authenticates to Kafka, when not with the identity the operator makes for it."""

    credentials_secret: KafkaCredentialsSecret | None = Field(
        None,
        description="Bring your own Kafka identity (MSK SCRAM, a Strimzi KafkaUser, a user made by your platform): "
        "the pods get its username and password as KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD, and the operator "
        "manages neither this user nor its ACLs. Unset: with the operator's Kafka user management on, the "
        "operator creates a user for the agent (Secret <agent>-kafka) and the ACLs its topics need.",
    )


class SupportAgentSpec(ResourceModel):
    """Desired state of a SupportAgent."""

    model_config = ResourceModel.model_config | {
        "json_schema_extra": validations(
            Rule(
                "self.role != 'specialist' || has(self.specialty)",
                f"a specialist needs spec.specialty: the ticket type it resolves ({_TICKET_TYPES})",
                field_path=".specialty",
                reason="FieldValueRequired",
            ),
            Rule(
                "self.role != 'triage' || !has(self.specialty)",
                "spec.specialty is only for role specialist; a triage agent routes every type through spec.routes",
                field_path=".specialty",
                reason="FieldValueForbidden",
            ),
            Rule(
                "self.role != 'triage' || (has(self.routes) && size(self.routes) > 0)",
                "a triage agent needs spec.routes: a map from ticket type to the topic its specialist reads, "
                "e.g. {billing: ticket.triaged.billing}",
                field_path=".routes",
                reason="FieldValueRequired",
            ),
            Rule(
                "self.role != 'specialist' || !has(self.routes)",
                "spec.routes is only for role triage; a specialist writes its drafts to spec.outputTopic",
                field_path=".routes",
                reason="FieldValueForbidden",
            ),
            Rule(
                "self.role != 'triage' || !has(self.outputTopic)",
                "spec.outputTopic is only for role specialist; a triage agent writes to the topics in spec.routes",
                field_path=".outputTopic",
                reason="FieldValueForbidden",
            ),
            Rule(
                "self.role != 'specialist' || !has(self.confidenceThreshold)",
                "spec.confidenceThreshold is only for role triage (below it, a ticket goes to the human topic)",
                field_path=".confidenceThreshold",
                reason="FieldValueForbidden",
            ),
            Rule(
                "self.role == 'triage' || !has(self.fallbackModel)",
                "spec.fallbackModel is only for role triage (a second opinion on the tickets spec.model is not "
                "sure of)",
                field_path=".fallbackModel",
                reason="FieldValueForbidden",
            ),
            Rule(
                "self.role != 'specialist' || !has(self.enrichment)",
                "spec.enrichment (customer lookup) is only for role triage",
                field_path=".enrichment",
                reason="FieldValueForbidden",
            ),
            Rule(
                "self.role != 'triage' || !has(self.guardrails)",
                "spec.guardrails apply to drafted responses, which only a specialist writes",
                field_path=".guardrails",
                reason="FieldValueForbidden",
            ),
            Rule(
                "(!has(self.outputTopic) || self.outputTopic != self.inputTopic) && "
                "(!has(self.routes) || self.routes.all(t, self.routes[t] != self.inputTopic)) && "
                "(!has(self.humanTopic) || self.humanTopic != self.inputTopic) && "
                "(!has(self.deadLetterTopic) || self.deadLetterTopic != self.inputTopic)",
                "an agent must not write to its own spec.inputTopic (it would consume its own output): "
                "use different topics for input and outputs",
                field_path=".inputTopic",
            ),
        )
    }

    role: Role = Field(description="triage classifies and routes tickets; specialist drafts responses for one type.")
    specialty: TicketType | None = Field(None, description="The ticket type a specialist resolves (role specialist).")
    model: ModelSpec | None = Field(None, description="The LLM. Defaults to the offline provider.")
    fallback_model: FallbackModelSpec | None = Field(
        None,
        description="Role triage: a model asked only when spec.model is not sure (confidence below "
        "confidenceThreshold, or no type) — e.g. an LLM behind the offline classifier. The ticket.triaged event "
        "says which stage decided.",
    )
    prompt: PromptSpec | None = Field(None, description="System prompt replacing the role's built-in one.")
    input_topic: TopicName = Field(
        description="Topic the agent consumes, e.g. ticket.events or ticket.triaged.billing."
    )
    output_topic: TopicName | None = Field(
        None, description="Where a specialist writes resolved tickets (role specialist). Defaults to ticket.resolved."
    )
    routes: dict[TicketType, TopicName] | None = Field(
        None,
        max_length=len(TicketType),
        description=f"Ticket type → topic of its specialist (role triage). Types: {_TICKET_TYPES}. "
        "A type without a route, and unknown tickets, go to humanTopic.",
        json_schema_extra=validations(
            Rule(
                f"self.all(t, t in {_TICKET_TYPES_CEL})",
                f"spec.routes keys must be ticket types ({_TICKET_TYPES}); unknown tickets go to spec.humanTopic",
            )
        ),
    )
    human_topic: TopicName | None = Field(
        None,
        description="The human queue: low-confidence or unknown tickets (triage), drafts failing guardrails "
        f"(specialist). {_default(TriageConfig, 'human_topic')}",
    )
    confidence_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description=f"Below this confidence a ticket goes to humanTopic (role triage). "
        f"{_default(TriageConfig, 'confidence_threshold')}",
    )
    dead_letter_topic: TopicName | None = Field(
        None, description="Where poison or exhausted inputs go, with the reason in headers. Defaults to ticket.dlq."
    )
    concurrency: int | None = Field(None, ge=1, le=1024, description="Tickets in flight per pod. Defaults to 16.")
    delivery: Delivery | None = Field(
        None,
        description="exactly-once (the default): outputs and input offsets commit together in Kafka "
        "transactions, so a crash or rebalance never sends a ticket's reply twice (needs a broker with "
        "transactions). at-least-once: outputs are written at once, a crash may repeat some; for a broker "
        "without transactions.",
    )
    replicas: int = Field(
        1, ge=0, le=1000, description="Pods of this agent (scale subresource); unused while spec.autoscaling owns them."
    )
    image: str | None = Field(
        None, max_length=1024, description="Agent image. Defaults to the operator's SRS_AGENT_IMAGE setting."
    )
    resources: Resources | None = Field(None, description="Container resources; the operator sets modest defaults.")
    env: list[EnvVar] | None = Field(
        None,
        max_length=64,
        description="Extra environment variables (literal values or Secret keys).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    enrichment: EnrichmentSpec | None = Field(None, description="Customer lookup in DynamoDB (role triage).")
    guardrails: GuardrailsSpec | None = Field(None, description="Checks on drafted responses (role specialist).")
    autoscaling: AutoscalingSpec | None = Field(
        None,
        description="Scale with the queue (maxReplicas: KEDA on the consumer lag of the input topic), or leave the "
        "replica count to another autoscaler (externallyManaged). spec.replicas is then not used.",
    )
    service_account_annotations: dict[str, Annotated[str, Field(max_length=1024)]] | None = Field(
        None,
        max_length=16,
        description="Annotations of the agent's ServiceAccount, e.g. eks.amazonaws.com/role-arn for IRSA.",
    )
    kafka: KafkaSpec | None = Field(
        None, description="The agent's Kafka identity (docs/kafka-security.md). Unset: the operator's default."
    )


class ConditionType(StrEnum):
    """Condition types of a SupportAgent: ``Ready`` summarises the rollout."""

    ACCEPTED = "Accepted"
    TOPICS_READY = "TopicsReady"
    READY = "Ready"
    #: Only for agents that scale on lag (spec.autoscaling.maxReplicas).
    AUTOSCALING = "Autoscaling"
    #: Only when the operator manages Kafka users, or the agent brings its own (spec.kafka).
    KAFKA_ACCESS_READY = "KafkaAccessReady"


class Reason(StrEnum):
    """``reason`` of SupportAgent conditions (and of the Events announcing them)."""

    APPLIED = "Applied"
    INVALID_SPEC = "InvalidSpec"
    PROMPT_NOT_FOUND = "PromptNotFound"
    OFFLINE_MODEL_NOT_FOUND = "OfflineModelNotFound"
    NAME_CONFLICT = "NameConflict"
    APPLY_FAILED = "ApplyFailed"
    TOPICS_READY = "TopicsReady"
    TOPICS_NOT_READY = "TopicsNotReady"
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLING_OUT = "RollingOut"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 - a reason, not a secret
    SECRETS_NOT_READABLE = "SecretsNotReadable"
    NOT_ACCEPTED = "NotAccepted"
    PODS_FAILING = "PodsFailing"
    AUTOSCALER_MISSING = "AutoscalerMissing"
    SCALING_ON_LAG = "ScalingOnLag"
    MAX_REPLICAS_CAPPED = "MaxReplicasCapped"
    SCALER_NOT_READY = "ScalerNotReady"
    ACCESS_GRANTED = "AccessGranted"
    CREDENTIALS_FROM_SECRET = "CredentialsFromSecret"  # noqa: S105 - a reason, not a secret
    TOPICS_NOT_ALLOWED = "TopicsNotAllowed"
    KAFKA_UNAVAILABLE = "KafkaUnavailable"
    KAFKA_REFUSED = "KafkaRefused"


class AutoscalingStatus(ResourceModel):
    """What the autoscaler (KEDA and the HPA it drives) last said about the agent."""

    max_replicas: int | None = Field(
        None, ge=0, description="The upper bound in force: spec.autoscaling.maxReplicas capped at the partitions."
    )
    reason: str | None = Field(
        None, max_length=128, description="Why the replica count is what it is, e.g. SucceededRescale, TooManyReplicas."
    )
    message: str | None = Field(None, max_length=1024, description="The autoscaler's own words.")
    last_scale_time: str | None = Field(None, max_length=64, description="When the replica count last changed.")


class SupportAgentStatus(ResourceModel):
    """Observed state of a SupportAgent, written by the operator."""

    observed_generation: int | None = Field(None, ge=0, description="The spec generation this status describes.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Accepted (spec valid, children applied), TopicsReady (every topic has a Ready TicketTopic), "
        "Ready (the current rollout is complete), Autoscaling (KEDA scales the agent on lag, when asked to), "
        "KafkaAccessReady (the agent's Kafka user and ACLs, when the operator manages them).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int = Field(0, ge=0, description="Pods of the agent's Deployment (current).")
    desired_replicas: int | None = Field(
        None, ge=0, description="Pods the Deployment asks for: spec.replicas, or what the autoscaler last decided."
    )
    ready_replicas: int = Field(0, ge=0, description="Pods that are ready.")
    ready: str | None = Field(None, max_length=32, description="readyReplicas/desired, e.g. 2/3.")
    selector: str | None = Field(None, max_length=1024, description="Label selector of the pods (scale subresource).")
    provider: str | None = Field(None, max_length=64, description="The LLM provider the pods use (defaults applied).")
    model: str | None = Field(None, max_length=256, description="The model the pods use (defaults applied).")
    autoscaling: AutoscalingStatus | None = Field(None, description="Scaling on consumer lag (spec.autoscaling).")


@dataclass(frozen=True)
class SupportAgent:
    """A SupportAgent as the services and builders see it: identity plus the parsed spec."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: SupportAgentSpec
    #: The agent's own annotations (e.g. ``srs.dev/rotate-kafka-credentials``).
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SupportAgent:
        """Parse a kopf body or a plain dict; raises ``pydantic.ValidationError``."""
        meta = body["metadata"]
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation") or 0),
            spec=SupportAgentSpec.model_validate(dict(body.get("spec") or {})),
            annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
        )


@dataclass(frozen=True)
class SecretVersion:
    """What the operator knows of a Secret: its identity and version, from its metadata.
    Nothing derived from the values: the config hash then reveals nothing about them."""

    uid: str
    resource_version: str
    #: The Secret's ``srs.dev/*`` annotations (the operator's own notes on a Secret it made).
    annotations: tuple[tuple[str, str], ...] = ()
    #: The SupportAgent that owns it (uid of a ``SupportAgent`` owner reference), if any.
    owner_uid: str | None = None

    def annotation(self, name: str) -> str | None:
        return dict(self.annotations).get(name)


SUPPORT_AGENT: Final = CustomResourceKind(
    kind="SupportAgent",
    plural="supportagents",
    singular="supportagent",
    short_names=("sagent",),
    description="An AI customer-support agent (triage or specialist) that consumes tickets from Kafka. The "
    "operator runs it as a Deployment with a rendered config, a ServiceAccount and a Service.",
    spec=SupportAgentSpec,
    status=SupportAgentStatus,
    printer_columns=(
        PrinterColumn("Role", ".spec.role", description="triage or specialist"),
        PrinterColumn("Specialty", ".spec.specialty", description="Ticket type a specialist resolves"),
        PrinterColumn("Provider", ".status.provider", description="LLM provider (defaults applied)"),
        PrinterColumn("Model", ".status.model", description="LLM model (defaults applied)"),
        PrinterColumn("Ready", ".status.ready", description="Ready pods / desired"),
        PrinterColumn("Status", '.status.conditions[?(@.type=="Ready")].reason', description="Why (not) Ready"),
        PrinterColumn(
            "Applied",
            '.status.conditions[?(@.type=="Accepted")].reason',
            description="Applied, or why the spec could not be (e.g. ApplyFailed: the API server refused a child)",
        ),
        PrinterColumn("Current", ".status.replicas", type="integer", description="Pods of the Deployment"),
        PrinterColumn(
            "Desired", ".status.desiredReplicas", type="integer", description="Pods asked for (spec or autoscaler)"
        ),
        PrinterColumn(
            "Scaling", ".status.autoscaling.reason", description="The autoscaler's last reason (spec.autoscaling)"
        ),
        PrinterColumn("Input", ".spec.inputTopic", description="Input topic", priority=1),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
    root_rules=(
        Rule(
            "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
            "a SupportAgent name must start with a letter and contain only lowercase letters, digits and '-' "
            "(at most 63 characters): it names the agent's Deployment and Service",
            field_path=".metadata.name",
        ),
    ),
    max_name_length=63,
    scale=ScaleSubresource(),
)
