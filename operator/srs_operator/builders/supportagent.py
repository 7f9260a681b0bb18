"""Where a SupportAgent becomes Kubernetes objects: pure functions, no I/O.

``SupportAgent`` (parsed CR) + operator settings + what the cluster holds for it (the
prompt text, digests of referenced Secrets) → the runtime config (``AgentConfig``) and
the children, in apply order: ServiceAccount, ConfigMap, Service, Deployment, and a KEDA
ScaledObject when the agent scales on consumer lag (``spec.autoscaling.maxReplicas``).

Rules the builders keep:

- Secrets never enter a manifest except as ``secretKeyRef``; the config names the
  *environment variable* holding the API key (:data:`API_KEY_ENV`).
- The pod template carries ``srs.dev/config-hash``: a digest of the rendered config and
  of the referenced Secrets' versions (never their values), so a config edit or a key
  rotation rolls pods.
- Every child has an owner reference to the agent and the ``app.kubernetes.io/*``
  labels; none carries the agent's own annotations.
- Kafka credentials reach the pods only as ``secretKeyRef`` env in the runtime's ``KAFKA_*``
  convention (``KAFKA_SASL_USERNAME`` → ``sasl.username``); the brokers' CA (public) goes into
  the agent's ConfigMap beside its config. KEDA reads the lag with the same credentials
  (a TriggerAuthentication named like the agent).
- ``replicas`` is left out of the Deployment when an autoscaler owns it (another one, or
  KEDA through the ScaledObject); an agent that should scale on lag where KEDA is not
  installed runs ``minReplicas`` pods (at least one), so tickets keep flowing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from srs_contracts.agent_config import CONFIG_KEY, AgentConfig, KafkaConfig, Role, SpecialistConfig, TriageConfig
from srs_operator.models.crd import API_VERSION
from srs_operator.models.supportagent import (
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_LAG_THRESHOLD,
    DEFAULT_POLLING_SECONDS,
    SUPPORT_AGENT,
    ConfigMapKeySelector,
    ModelSpec,
    SecretVersion,
    SupportAgent,
    SupportAgentSpec,
)
from srs_operator.settings import MANAGED_BY, OperatorSettings

CONFIG_HASH_ANNOTATION: Final = "srs.dev/config-hash"
#: Environment variable carrying the model API key (filled from ``spec.model.apiKeySecretRef``).
API_KEY_ENV: Final = "SRS_MODEL_API_KEY"
#: The same for ``spec.fallbackModel.apiKeySecretRef``.
FALLBACK_API_KEY_ENV: Final = "SRS_FALLBACK_MODEL_API_KEY"
#: The pod's own name (downward API); the runtime's transactional.id ends with it.
POD_NAME_ENV: Final = "SRS_POD_NAME"
CONFIG_DIR: Final = "/etc/srs"
CONFIG_PATH: Final = f"{CONFIG_DIR}/{CONFIG_KEY}"
#: Where ``spec.model.offline.modelRef`` is mounted (a directory holding ``model.json.gz``).
OFFLINE_MODEL_DIR: Final = "/etc/srs-offline-model"
OFFLINE_MODEL_FILE: Final = "model.json.gz"
#: The brokers' CA in the agent's ConfigMap (mounted beside the config) when the agents use TLS.
KAFKA_CA_KEY: Final = "kafka-ca.crt"
KAFKA_CA_PATH: Final = f"{CONFIG_DIR}/{KAFKA_CA_KEY}"
#: Keys of the Secret ``<agent>-kafka`` the operator makes when it manages Kafka users.
USERNAME_KEY: Final = "username"
PASSWORD_KEY: Final = "password"  # noqa: S105 - a key name
#: The same Secret's copy of the brokers' CA (KEDA reads a CA only from a Secret).
SECRET_CA_KEY: Final = "ca.crt"  # noqa: S105 - a key name
#: KEDA's name of each SASL mechanism (its Kafka scaler's ``sasl`` parameter).
KEDA_SASL: Final[Mapping[str, str]] = {
    "SCRAM-SHA-512": "scram_sha512",
    "SCRAM-SHA-256": "scram_sha256",
    "PLAIN": "plaintext",
    "OAUTHBEARER": "oauthbearer",
}
HTTP_PORT: Final = 8080
#: The uid of the image's ``srs`` user (Dockerfile); pods run as it.
RUN_AS_UID: Final = 10001
APP_NAME: Final = "support-agent"
CONTAINER_NAME: Final = "agent"
DEFAULT_RESOURCES: Final[Mapping[str, Mapping[str, str]]] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}


@dataclass(frozen=True)
class SecretKeyRef:
    """A Secret key the agent's pods read."""

    name: str
    key: str


@dataclass(frozen=True)
class KafkaCredentials:
    """Where the agent's SASL username and password come from."""

    secret: str
    password_key: str
    #: The Secret's key holding the username, or None when ``username`` names it.
    username_key: str | None = USERNAME_KEY
    username: str | None = None
    #: The operator made the Secret (``<agent>-kafka``): it also holds the CA for KEDA.
    managed: bool = False


# -- identity -----------------------------------------------------------------------------


def selector_labels(agent: SupportAgent) -> dict[str, str]:
    """Labels that select the agent's pods (immutable on the Deployment)."""
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": agent.name}


def selector_string(agent: SupportAgent) -> str:
    """The pod selector as ``status.selector`` reports it for the scale subresource."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(agent).items()))


def labels(agent: SupportAgent) -> dict[str, str]:
    """Labels of every child (and of the pods)."""
    out = selector_labels(agent) | {
        "app.kubernetes.io/component": agent.spec.role.value,
        "app.kubernetes.io/part-of": "srs",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if agent.spec.specialty is not None:
        out["srs.dev/specialty"] = agent.spec.specialty.value
    return out


def owner_reference(agent: SupportAgent) -> dict[str, Any]:
    """Makes the agent the controller of a child: garbage collection deletes the child with it."""
    return {
        "apiVersion": API_VERSION,
        "kind": SUPPORT_AGENT.kind,
        "name": agent.name,
        "uid": agent.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(agent: SupportAgent, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": agent.namespace,
        "labels": labels(agent),
        "ownerReferences": [owner_reference(agent)],
    }


#: The kinds of an agent's children, in apply order.
CHILD_KINDS: Final = ("ServiceAccount", "ConfigMap", "Service", "TriggerAuthentication", "Deployment", "ScaledObject")
#: The children an agent has only in some configurations: removed when no longer desired.
OPTIONAL_CHILD_KINDS: Final = ("TriggerAuthentication", "ScaledObject")
#: ``spec.clusterIP`` of a headless Service.
HEADLESS: Final = "None"


def child_name(agent_name: str, kind: str) -> str:
    """The name of the agent's child of ``kind``: the agent's own, but ``<agent>-config`` for
    the ConfigMap (the one place a child's name is decided)."""
    return f"{agent_name}-config" if kind == "ConfigMap" else agent_name


def config_map_name(agent: SupportAgent) -> str:
    return child_name(agent.name, "ConfigMap")


# -- the runtime config -------------------------------------------------------------------


def _model_section(m: ModelSpec, api_key_env: str) -> dict[str, Any]:
    return _set(
        provider=m.provider.value,
        name=m.name,
        base_url=m.base_url,
        region=m.region,
        api_key_env=api_key_env if m.api_key_secret_ref is not None else None,
        temperature=m.temperature,
        max_tokens=m.max_tokens,
        timeout_seconds=m.timeout_seconds,
        model_dir=OFFLINE_MODEL_DIR if offline_model_ref(m) is not None else None,
    )


def offline_model_ref(model: ModelSpec | None) -> ConfigMapKeySelector | None:
    """The ConfigMap key holding a trained offline model, if the spec names one."""
    if model is None or model.offline is None:
        return None
    return model.offline.model_ref


def render_config(agent: SupportAgent, settings: OperatorSettings, prompt_from_config_map: str | None) -> AgentConfig:
    """The runtime-config document for ``agent``. The system prompt is ``spec.prompt.inline``
    or, for ``configMapKeyRef``, ``prompt_from_config_map`` (read by the caller). Unset spec
    fields take the runtime's defaults, so a default lives only in ``srs_contracts.agent_config``."""
    spec = agent.spec
    prompt = spec.prompt.inline if spec.prompt is not None and spec.prompt.inline else prompt_from_config_map
    model = _model_section(spec.model, API_KEY_ENV) if spec.model is not None else {}
    fallback = spec.fallback_model
    doc: dict[str, Any] = {
        "name": agent.name,
        "namespace": agent.namespace,
        "role": spec.role.value,
        "model": model,
        "kafka": _set(
            bootstrap_servers=settings.agent_kafka_bootstrap_servers,
            group_id=consumer_group(agent),
            input_topic=spec.input_topic,
            dead_letter_topic=spec.dead_letter_topic,
            delivery=spec.delivery.value if spec.delivery is not None else None,
        ),
        "concurrency": spec.concurrency,
        "system_prompt": prompt,
        "fallback_model": _model_section(fallback, FALLBACK_API_KEY_ENV) if fallback is not None else None,
    }
    if spec.role is Role.TRIAGE:
        doc["triage"] = _set(
            routes={t.value: topic for t, topic in (spec.routes or {}).items()},
            human_topic=spec.human_topic,
            confidence_threshold=spec.confidence_threshold,
            fallback_threshold=fallback.confidence_threshold if fallback is not None else None,
        )
        if spec.enrichment is not None:
            e = spec.enrichment
            doc["enrichment"] = _set(
                table=e.table,
                region=e.region,
                endpoint_url=e.endpoint_url,
                key_attribute=e.key_attribute,
                timeout_seconds=e.timeout_seconds,
                cache_ttl_seconds=e.cache_ttl_seconds,
            )
    else:
        doc["specialist"] = _set(
            specialty=spec.specialty.value if spec.specialty is not None else None,
            output_topic=spec.output_topic,
            human_topic=spec.human_topic,
        )
        if spec.guardrails is not None:
            g = spec.guardrails
            doc["guardrails"] = _set(
                max_length=g.max_length, forbidden_phrases=g.forbidden_phrases, block_pii=g.block_pii
            )
    return AgentConfig.model_validate(_set(**doc))


def _set(**fields: Any) -> dict[str, Any]:
    """Only the fields that have a value (the rest take the runtime's defaults)."""
    return {k: v for k, v in fields.items() if v is not None}


def agent_topics(agent: SupportAgent) -> frozenset[str]:
    """Every Kafka topic the agent reads or writes (dead letter included): what
    :func:`render_config` renders (unset topics at the runtime's defaults, read from the
    runtime's config models), without rendering a whole config. The topic-usage index
    (:mod:`srs_operator.handlers.topic_usage`) computes it once per agent change."""
    spec = agent.spec

    def default(section: type[KafkaConfig | TriageConfig | SpecialistConfig], field: str) -> str:
        return str(section.model_fields[field].default)

    topics = {spec.input_topic, spec.dead_letter_topic or default(KafkaConfig, "dead_letter_topic")}
    if spec.role is Role.TRIAGE:
        topics |= set((spec.routes or {}).values())
        topics.add(spec.human_topic or default(TriageConfig, "human_topic"))
    else:
        topics.add(spec.output_topic or default(SpecialistConfig, "output_topic"))
        topics.add(spec.human_topic or default(SpecialistConfig, "human_topic"))
    return frozenset(topics)


def credentials_secret_name(agent_name: str) -> str:
    """The Secret holding the Kafka user the operator made for the agent."""
    return f"{agent_name}-kafka"


def kafka_credentials(agent: SupportAgent, settings: OperatorSettings) -> KafkaCredentials | None:
    """The agent's Kafka credentials: its own Secret (``spec.kafka.credentialsSecret``), else the
    one the operator makes when it manages Kafka users, else none."""
    own = agent.spec.kafka.credentials_secret if agent.spec.kafka is not None else None
    if own is not None:
        return KafkaCredentials(
            secret=own.name,
            password_key=own.password_key_or_default,
            username_key=None if own.username else own.username_key or USERNAME_KEY,
            username=own.username,
        )
    if settings.agent_kafka.users_managed:
        return KafkaCredentials(credentials_secret_name(agent.name), PASSWORD_KEY, managed=True)
    return None


def all_secret_refs(agent: SupportAgent, settings: OperatorSettings) -> list[SecretKeyRef]:
    """Every Secret key the pods read: :func:`referenced_secrets` and the Kafka credentials."""
    refs = set(referenced_secrets(agent.spec))
    creds = kafka_credentials(agent, settings)
    if creds is not None:
        refs.add(SecretKeyRef(creds.secret, creds.password_key))
        if creds.username_key is not None:
            refs.add(SecretKeyRef(creds.secret, creds.username_key))
    return sorted(refs, key=lambda r: (r.name, r.key))


def kafka_ca(settings: OperatorSettings) -> str | None:
    """The CA the agents verify the brokers with (None: not TLS, or the system's trust store)."""
    kafka = settings.agent_kafka
    return kafka.ca_pem if kafka.tls else None


def referenced_secrets(spec: SupportAgentSpec) -> list[SecretKeyRef]:
    """Secret keys the pods read (API key, env), in a stable order."""
    refs: set[SecretKeyRef] = set()
    for model in (spec.model, spec.fallback_model):
        if model is not None and model.api_key_secret_ref is not None:
            ref = model.api_key_secret_ref
            refs.add(SecretKeyRef(ref.name, ref.key))
    for var in spec.env or ():
        if var.value_from is not None:
            ref = var.value_from.secret_key_ref
            refs.add(SecretKeyRef(ref.name, ref.key))
    return sorted(refs, key=lambda r: (r.name, r.key))


def config_hash(
    config_yaml: str,
    refs: Iterable[SecretKeyRef],
    secrets: Mapping[str, SecretVersion | None],
    offline_model: str | None = None,
    kafka_ca_pem: str | None = None,
) -> str:
    """Digest of what the pods were started with: the config text (and the brokers' CA beside it), the version (uid and
    ``resourceVersion``) of each referenced Secret (``missing`` while absent, so its arrival
    rolls the pods) and the digest of the trained offline model they mount (a new model
    rolls them). Any write to a referenced Secret — a key rotation — changes its version;
    no value goes in, so the annotation cannot be used to test guesses of a key offline."""
    h = hashlib.sha256(config_yaml.encode())
    if kafka_ca_pem is not None:
        h.update(f"\0kafka-ca\0{kafka_ca_pem}".encode())
    if offline_model is not None:
        h.update(f"\0offline-model\0{offline_model}".encode())
    for ref in refs:
        version = secrets.get(ref.name)
        seen = f"{version.uid}/{version.resource_version}" if version is not None else "missing"
        h.update(f"\0{ref.name}\0{ref.key}\0{seen}".encode())
    return h.hexdigest()[:32]


# -- children -----------------------------------------------------------------------------


def build_service_account(agent: SupportAgent) -> dict[str, Any]:
    """The pods' identity; no API token is mounted (agents never talk to Kubernetes)."""
    meta = _metadata(agent, child_name(agent.name, "ServiceAccount"))
    if agent.spec.service_account_annotations:
        meta["annotations"] = dict(agent.spec.service_account_annotations)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta,
        "automountServiceAccountToken": False,
    }


def build_config_map(agent: SupportAgent, config_yaml: str, kafka_ca_pem: str | None = None) -> dict[str, Any]:
    """The rendered runtime config, ``AgentConfig.to_yaml()`` (no secrets: the API key is
    only an env var's name), and the brokers' CA when the agents use TLS (a CA is public)."""
    data = {CONFIG_KEY: config_yaml}
    if kafka_ca_pem is not None:
        data[KAFKA_CA_KEY] = kafka_ca_pem
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(agent, config_map_name(agent)),
        "data": data,
    }


def build_service(agent: SupportAgent) -> dict[str, Any]:
    """Health and metrics endpoint of the pods (``/healthz``, ``/readyz``, ``/metrics``).

    Headless: nothing calls an agent through a virtual IP (its work comes from Kafka), and
    what reads the endpoint — Prometheus' service discovery, a ServiceMonitor, the API
    server's service proxy — goes to the pods' own addresses. So an agent takes no address
    from the cluster's service range and no kube-proxy rule on any node, however many agents
    a cluster runs."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(agent, child_name(agent.name, "Service")),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": HEADLESS,
            "selector": selector_labels(agent),
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _env(agent: SupportAgent, settings: OperatorSettings) -> list[dict[str, Any]]:
    # The pod's name makes the transactional.id of an exactly-once agent: a restarted
    # container fences the transaction its predecessor left open at once.
    env: list[dict[str, Any]] = [
        {"name": POD_NAME_ENV, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}
    ]
    for model, name in ((agent.spec.model, API_KEY_ENV), (agent.spec.fallback_model, FALLBACK_API_KEY_ENV)):
        if model is not None and model.api_key_secret_ref is not None:
            ref = model.api_key_secret_ref
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    for var in agent.spec.env or ():
        if var.value_from is not None:
            ref = var.value_from.secret_key_ref
            env.append({"name": var.name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
        elif var.value:
            env.append({"name": var.name, "value": var.value})
        else:
            # The API server does not store an empty value (omitempty): ``{"name": X}`` is how
            # it keeps ``value: ""``, so that is what the live object is compared against.
            env.append({"name": var.name})
    # The operator's Kafka connection and OpenTelemetry settings, unless the agent's own env sets them.
    named = {var["name"] for var in env}
    env += [var for var in _kafka_env(agent, settings) if var["name"] not in named]
    env += [{"name": name, "value": value} for name, value in settings.agent_otel_env if value and name not in named]
    return env


def _kafka_env(agent: SupportAgent, settings: OperatorSettings) -> list[dict[str, Any]]:
    """How the pod connects to Kafka, in the runtime's ``KAFKA_*`` convention: the protocol,
    the SASL mechanism and credentials (``secretKeyRef`` only), the CA's path."""
    kafka = settings.agent_kafka
    env: list[dict[str, Any]] = []
    if kafka.security_protocol != "PLAINTEXT":
        env.append({"name": "KAFKA_SECURITY_PROTOCOL", "value": kafka.security_protocol})
    if kafka.sasl:
        env.append({"name": "KAFKA_SASL_MECHANISM", "value": kafka.sasl_mechanism})
    creds = kafka_credentials(agent, settings)
    if creds is not None:
        if creds.username is not None:
            env.append({"name": "KAFKA_SASL_USERNAME", "value": creds.username})
        else:
            ref = {"name": creds.secret, "key": creds.username_key}
            env.append({"name": "KAFKA_SASL_USERNAME", "valueFrom": {"secretKeyRef": ref}})
        ref = {"name": creds.secret, "key": creds.password_key}
        env.append({"name": "KAFKA_SASL_PASSWORD", "valueFrom": {"secretKeyRef": ref}})
    if kafka_ca(settings) is not None:
        env.append({"name": "KAFKA_SSL_CA_LOCATION", "value": KAFKA_CA_PATH})
    return env


def _resources(agent: SupportAgent) -> dict[str, Any]:
    res = agent.spec.resources
    if res is None:
        return {k: dict(v) for k, v in DEFAULT_RESOURCES.items()}
    out: dict[str, Any] = {}
    if res.requests:
        out["requests"] = {k: str(v) for k, v in res.requests.items()}
    if res.limits:
        out["limits"] = {k: str(v) for k, v in res.limits.items()}
    return out


def build_deployment(
    agent: SupportAgent, settings: OperatorSettings, hash_: str, replicas: int | None = None
) -> dict[str, Any]:
    """The agent's pods: ``srs agent --config``, probes on the runtime's HTTP port, and a
    securityContext that passes the ``restricted`` Pod Security Standard. ``replicas``:
    :func:`deployment_replicas` (None: an autoscaler sets them)."""
    pod_labels = labels(agent)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": agent.spec.image or settings.agent_image,
        "command": ["srs"],
        "args": ["agent", "--config", CONFIG_PATH],
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": _resources(agent),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir: the root filesystem is read-only
        ],
    }
    env = _env(agent, settings)
    if env:
        container["env"] = env
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_map_name(agent)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    model_ref = offline_model_ref(agent.spec.model)
    if model_ref is not None:
        container["volumeMounts"].append({"name": "offline-model", "mountPath": OFFLINE_MODEL_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "offline-model",
                "configMap": {"name": model_ref.name, "items": [{"key": model_ref.key, "path": OFFLINE_MODEL_FILE}]},
            }
        )
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(agent)},
        "revisionHistoryLimit": 3,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {
                    CONFIG_HASH_ANNOTATION: hash_,
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(HTTP_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "serviceAccountName": child_name(agent.name, "ServiceAccount"),
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 30,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": RUN_AS_UID,
                    "runAsGroup": RUN_AS_UID,
                    "fsGroup": RUN_AS_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas} | spec
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(agent, child_name(agent.name, "Deployment")),
        "spec": spec,
    }


def deployment_replicas(agent: SupportAgent, keda: bool) -> int | None:
    """The Deployment's ``replicas``: ``spec.replicas``; None when an autoscaler sets them
    (``keda``: KEDA's ScaledObject is served, so the one the operator renders scales the
    agent); ``minReplicas`` (at least 1) for an agent meant to scale on lag without KEDA."""
    scaling = agent.spec.autoscaling
    if scaling is None or not scaling.owns_replicas:
        return agent.spec.replicas
    if scaling.on_lag and not keda:
        return max(1, scaling.min_replicas if scaling.min_replicas is not None else 1)
    return None


def max_replicas(agent: SupportAgent, partitions: int | None) -> int | None:
    """``spec.autoscaling.maxReplicas`` capped at the input topic's ``partitions`` (when
    known): a consumer beyond them would get no partition. None without lag scaling."""
    scaling = agent.spec.autoscaling
    if scaling is None or scaling.max_replicas is None:
        return None
    return min(scaling.max_replicas, partitions) if partitions else scaling.max_replicas


def consumer_group(agent: SupportAgent) -> str:
    """The Kafka consumer group of the agent's pods (the runtime config's ``group_id``)."""
    return f"srs.{agent.namespace}.{agent.name}"


#: The name of the lag trigger in the ScaledObject (and of KEDA's metric).
LAG_TRIGGER: Final = "consumer-lag"
#: Lag reads in a row that may fail before KEDA holds the fallback replica count.
FALLBACK_FAILURES: Final = 3


def build_scaled_object(
    agent: SupportAgent, bootstrap_servers: str, partitions: int | None, settings: OperatorSettings | None = None
) -> dict[str, Any]:
    """KEDA's ScaledObject scaling the agent's Deployment on the lag of its consumer group on
    its input topic. ``cooldownSeconds`` paces scale-down as well as the step to zero (the
    HPA's stabilization window), so a burst's last pods are not removed mid-backlog; the HPA
    KEDA creates is named like the agent. Lag read before the group's first commit counts
    every retained ticket (``offsetResetPolicy: earliest``, as the agent reads); replicas
    never exceed the partitions (:func:`max_replicas`, and KEDA's ``allowIdleConsumers``
    off); when the lag cannot be read, KEDA holds ``minReplicas`` pods (at least one). With
    SASL or TLS (``settings``) the trigger says so and authenticates through
    :func:`build_trigger_authentication` (the agent's own credentials)."""
    scaling = agent.spec.autoscaling
    assert scaling is not None and scaling.max_replicas is not None
    low = scaling.min_replicas if scaling.min_replicas is not None else 1
    cooldown = scaling.cooldown_seconds if scaling.cooldown_seconds is not None else DEFAULT_COOLDOWN_SECONDS
    lag = scaling.lag_threshold if scaling.lag_threshold is not None else DEFAULT_LAG_THRESHOLD
    activation = scaling.activation_lag_threshold if scaling.activation_lag_threshold is not None else 0
    high = max_replicas(agent, partitions) or 1
    trigger: dict[str, Any] = {
        "type": "kafka",
        "name": LAG_TRIGGER,
        "metadata": {
            "bootstrapServers": bootstrap_servers,
            "consumerGroup": consumer_group(agent),
            "topic": agent.spec.input_topic,
            "lagThreshold": str(lag),
            "activationLagThreshold": str(activation),
            "offsetResetPolicy": "earliest",
            "allowIdleConsumers": "false",
        },
    }
    kafka = settings.agent_kafka if settings is not None else None
    if kafka is not None and kafka.sasl:
        trigger["metadata"]["sasl"] = KEDA_SASL.get(kafka.sasl_mechanism, kafka.sasl_mechanism.lower())
    if kafka is not None and kafka.tls:
        trigger["metadata"]["tls"] = "enable"
    if settings is not None and build_trigger_authentication(agent, settings) is not None:
        trigger["authenticationRef"] = {"name": child_name(agent.name, "TriggerAuthentication")}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(agent, child_name(agent.name, "ScaledObject")),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": agent.name},
            "minReplicaCount": min(low, high),
            "maxReplicaCount": high,
            "pollingInterval": scaling.polling_seconds or DEFAULT_POLLING_SECONDS,
            "cooldownPeriod": cooldown,
            "fallback": {"failureThreshold": FALLBACK_FAILURES, "replicas": max(1, min(low, high))},
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "name": agent.name,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": cooldown}},
                }
            },
            "triggers": [trigger],
        },
    }


def build_trigger_authentication(agent: SupportAgent, settings: OperatorSettings) -> dict[str, Any] | None:
    """KEDA's credentials for reading the agent's lag: the agent's own SASL username and password
    (and, in the Secret the operator made, the brokers' CA). None when the agents do not
    authenticate with SASL or have no credentials."""
    creds = kafka_credentials(agent, settings)
    if creds is None or not settings.agent_kafka.sasl:
        return None
    refs = [{"parameter": "password", "name": creds.secret, "key": creds.password_key}]
    spec: dict[str, Any] = {}
    if creds.username_key is not None:
        refs.insert(0, {"parameter": "username", "name": creds.secret, "key": creds.username_key})
    else:  # a literal username (spec.kafka.credentialsSecret.username): KEDA reads the container's variable
        spec["env"] = [{"parameter": "username", "name": "KAFKA_SASL_USERNAME", "containerName": CONTAINER_NAME}]
    if creds.managed and kafka_ca(settings) is not None:
        refs.append({"parameter": "ca", "name": creds.secret, "key": SECRET_CA_KEY})
    spec["secretTargetRef"] = refs
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": _metadata(agent, child_name(agent.name, "TriggerAuthentication")),
        "spec": spec,
    }


@dataclass(frozen=True)
class DesiredState:
    """Everything the operator wants to exist for one agent."""

    config: AgentConfig
    config_hash: str
    children: tuple[dict[str, Any], ...]  # apply order
    secret_refs: tuple[SecretKeyRef, ...]


def build_desired(
    agent: SupportAgent,
    settings: OperatorSettings,
    prompt_from_config_map: str | None,
    secrets: Mapping[str, SecretVersion | None],
    offline_model: str | None = None,
    *,
    keda: bool = False,
    partitions: int | None = None,
) -> DesiredState:
    """The config and the children of ``agent``, given what the cluster holds for it
    (``offline_model``: a digest of the trained model ``spec.model.offline.modelRef`` names;
    ``keda``: KEDA's ScaledObject is served; ``partitions``: of the input topic, when known)."""
    config = render_config(agent, settings, prompt_from_config_map)
    refs = tuple(all_secret_refs(agent, settings))
    config_yaml = config.to_yaml()
    ca = kafka_ca(settings)
    hash_ = config_hash(config_yaml, refs, secrets, offline_model, ca)
    # KEDA reads the lag at the address the operator renders for the agents: without one
    # (agents find Kafka through their own environment) no ScaledObject can be made.
    bootstrap = settings.agent_kafka_bootstrap_servers if keda else None
    children: tuple[dict[str, Any], ...] = (
        build_service_account(agent),
        build_config_map(agent, config_yaml, ca),
        build_service(agent),
        build_deployment(agent, settings, hash_, deployment_replicas(agent, bootstrap is not None)),
    )
    scaling = agent.spec.autoscaling
    if bootstrap is not None and scaling is not None and scaling.on_lag:
        auth = build_trigger_authentication(agent, settings)
        if auth is not None:
            children = (*children[:3], auth, *children[3:])
        children += (build_scaled_object(agent, bootstrap, partitions, settings),)
    return DesiredState(config=config, config_hash=hash_, children=children, secret_refs=refs)


def manifest_digest(obj: Mapping[str, Any]) -> str:
    """Stable digest of a desired manifest (``srs.dev/applied`` on the child records it)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
