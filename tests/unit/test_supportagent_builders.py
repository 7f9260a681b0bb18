"""A SupportAgent becomes a ServiceAccount, a ConfigMap, a Service and a Deployment.

The manifests are compared with golden YAML files in ``tests/unit/golden/``; after an
intended change, regenerate them with ``SRS_UPDATE_GOLDEN=1 pytest tests/unit`` and
review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from srs_contracts.agent_config import CONFIG_KEY, AgentConfig
from srs_operator.builders import supportagent as build
from srs_operator.models.supportagent import SecretVersion, SupportAgent
from srs_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = OperatorSettings(agent_image="registry.example/srs:1.2.3", agent_kafka_bootstrap_servers="kafka:9092")
API_KEY_VALUE = "c2stYW50LXNlY3JldC12YWx1ZQ=="  # what the Secret's data holds (base64)

TRIAGE: dict[str, Any] = {
    "apiVersion": "srs.dev/v1alpha1",
    "kind": "SupportAgent",
    "metadata": {
        "namespace": "support",
        "name": "triage",
        "uid": "6f1c1a52-0000-4000-8000-000000000001",
        "generation": 4,
        "annotations": {"argocd.argoproj.io/tracking-id": "support:srs.dev/SupportAgent:support/triage"},
        "labels": {"team": "support"},
    },
    "spec": {
        "role": "triage",
        "inputTopic": "ticket.events",
        "routes": {
            "billing": "ticket.triaged.billing",
            "technical": "ticket.triaged.technical",
            "account": "ticket.triaged.account",
        },
        "humanTopic": "ticket.triaged.human",
        "confidenceThreshold": 0.7,
        "model": {
            "provider": "anthropic",
            "name": "claude-sonnet-4-5",
            "apiKeySecretRef": {"name": "llm-keys", "key": "anthropic"},
            "temperature": 0.2,
            "maxTokens": 512,
        },
        "enrichment": {"table": "customers", "region": "eu-west-1"},
        "env": [
            {"name": "LOG_LEVEL", "value": "debug"},
            {"name": "SENTRY_DSN", "valueFrom": {"secretKeyRef": {"name": "observability", "key": "sentry-dsn"}}},
        ],
        "replicas": 2,
        "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/triage"},
    },
}

SPECIALIST: dict[str, Any] = {
    "apiVersion": "srs.dev/v1alpha1",
    "kind": "SupportAgent",
    "metadata": {"namespace": "support", "name": "billing", "uid": "6f1c1a52-0000-4000-8000-000000000002"},
    "spec": {
        "role": "specialist",
        "specialty": "billing",
        "inputTopic": "ticket.triaged.billing",
        "outputTopic": "ticket.resolved",
        "deadLetterTopic": "ticket.dlq.billing",
        "model": {"provider": "ollama", "name": "llama3.1", "baseURL": "http://ollama.ollama.svc:11434/v1"},
        "prompt": {"inline": "You resolve billing tickets. Be brief and kind."},
        "guardrails": {"maxLength": 2000, "forbiddenPhrases": ["guaranteed refund"]},
        "concurrency": 32,
        "image": "registry.example/srs:canary",
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        "autoscaling": {"externallyManaged": True},
    },
}


class _GoldenDumper(yaml.SafeDumper):
    """Multi-line strings (the rendered config) as readable ``|`` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_GoldenDumper.add_representer(str, _str)


def _desired(body: dict[str, Any], secrets: dict[str, SecretVersion | None] | None = None) -> build.DesiredState:
    return build.build_desired(SupportAgent.from_body(body), SETTINGS, None, secrets or {})


def _triage_secrets() -> dict[str, SecretVersion | None]:
    return {
        "llm-keys": SecretVersion(uid="5b0c8a1e-0000-4000-8000-000000000007", resource_version="4711"),
        "observability": SecretVersion(uid="5b0c8a1e-0000-4000-8000-000000000008", resource_version="815"),
    }


@pytest.mark.parametrize(
    ("case", "body", "secrets"),
    [("triage", TRIAGE, _triage_secrets()), ("specialist", SPECIALIST, {})],
)
def test_children_match_golden_manifests(case: str, body: dict[str, Any], secrets: dict[str, Any]) -> None:
    children = _desired(body, secrets).children
    rendered = "---\n".join(yaml.dump(c, Dumper=_GoldenDumper, sort_keys=False) for c in children)
    path = GOLDEN / f"supportagent-{case}.yaml"
    if os.environ.get("SRS_UPDATE_GOLDEN"):
        path.write_text(rendered)
    assert rendered == path.read_text(), f"{path.name} differs; regenerate with SRS_UPDATE_GOLDEN=1 and review"


def test_config_map_holds_the_runtime_config_and_no_secret() -> None:
    desired = _desired(TRIAGE, _triage_secrets())
    config_map = next(c for c in desired.children if c["kind"] == "ConfigMap")
    text = config_map["data"][CONFIG_KEY]
    config = AgentConfig.from_yaml(text)  # the runtime's own model accepts it
    assert config.model.api_key_env == build.API_KEY_ENV
    assert config.triage is not None and config.triage.confidence_threshold == 0.7
    assert config.kafka.bootstrap_servers == "kafka:9092"
    everything = yaml.safe_dump(list(desired.children))
    assert API_KEY_VALUE not in everything
    assert "sk-" not in text and "secretKeyRef" not in text


def test_api_keys_reach_the_pod_only_through_secret_key_refs() -> None:
    deployment = _desired(TRIAGE, _triage_secrets()).children[3]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[build.API_KEY_ENV] == {
        "name": build.API_KEY_ENV,
        "valueFrom": {"secretKeyRef": {"name": "llm-keys", "key": "anthropic"}},
    }
    assert "value" not in env["SENTRY_DSN"]


def test_pods_pass_the_restricted_pod_security_standard() -> None:
    pod = _desired(TRIAGE).children[3]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert all("hostPath" not in v for v in pod["volumes"])


def test_every_child_is_owned_and_none_copies_the_agent_annotations() -> None:
    for child in _desired(TRIAGE).children:
        meta = child["metadata"]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "srs.dev/v1alpha1",
                "kind": "SupportAgent",
                "name": "triage",
                "uid": TRIAGE["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert "argocd.argoproj.io/tracking-id" not in (meta.get("annotations") or {})
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "srs-operator"


def test_replicas_are_left_to_an_external_autoscaler() -> None:
    assert "replicas" not in _desired(SPECIALIST).children[3]["spec"]
    assert _desired(TRIAGE).children[3]["spec"]["replicas"] == 2


def _hash(body: dict[str, Any], secrets: dict[str, SecretVersion | None]) -> str:
    return _desired(body, secrets).config_hash


def test_config_hash_follows_the_config_and_the_versions_of_the_referenced_secrets() -> None:
    secrets = _triage_secrets()
    base = _hash(TRIAGE, secrets)
    assert _hash(TRIAGE, _triage_secrets()) == base  # deterministic
    rotated = dict(secrets, **{"llm-keys": SecretVersion(secrets["llm-keys"].uid, "4712")})  # type: ignore[union-attr]
    assert _hash(TRIAGE, rotated) != base
    recreated = dict(secrets, **{"llm-keys": SecretVersion("another-uid", "4711")})
    assert _hash(TRIAGE, recreated) != base
    missing = dict(secrets, **{"llm-keys": None})
    assert _hash(TRIAGE, missing) != base
    edited = {**TRIAGE, "spec": {**TRIAGE["spec"], "confidenceThreshold": 0.8}}
    assert _hash(edited, secrets) != base
    template = _desired(TRIAGE, secrets).children[3]["spec"]["template"]["metadata"]["annotations"]
    assert template[build.CONFIG_HASH_ANNOTATION] == base


def test_unset_fields_take_the_runtime_defaults() -> None:
    minimal = {
        "metadata": {"namespace": "n", "name": "tech", "uid": "u"},
        "spec": {"role": "specialist", "specialty": "technical", "inputTopic": "ticket.triaged.technical"},
    }
    config = _desired(minimal).config
    defaults = AgentConfig.model_fields
    assert config.concurrency == defaults["concurrency"].default
    assert config.kafka.dead_letter_topic == "ticket.dlq"
    assert config.specialist is not None and config.specialist.output_topic == "ticket.resolved"
    assert config.model.provider.value == "offline"
    assert build.agent_topics(SupportAgent.from_body(minimal)) == {
        "ticket.triaged.technical",
        "ticket.resolved",
        "ticket.triaged.human",
        "ticket.dlq",
    }


@pytest.mark.parametrize("body", [TRIAGE, SPECIALIST], ids=["triage", "specialist"])
def test_the_topics_an_agent_uses_are_the_topics_its_rendered_config_names(body: dict[str, Any]) -> None:
    # agent_topics reads the spec (for the topic-usage index); the pods read the rendered config.
    config = _desired(body).config
    assert build.agent_topics(SupportAgent.from_body(body)) == {config.kafka.input_topic} | config.output_topics()


def test_a_prompt_from_a_config_map_is_rendered_inline() -> None:
    body = {**SPECIALIST, "spec": {**SPECIALIST["spec"], "prompt": {"configMapKeyRef": {"name": "p", "key": "k"}}}}
    agent = SupportAgent.from_body(body)
    config = build.render_config(agent, SETTINGS, "Answer billing questions.")
    assert config.system_prompt == "Answer billing questions."


CASCADE: dict[str, Any] = {
    "metadata": {"namespace": "support", "name": "triage", "uid": "u-cascade"},
    "spec": {
        "role": "triage",
        "inputTopic": "ticket.events",
        "routes": {"billing": "ticket.triaged.billing"},
        "confidenceThreshold": 0.9,
        "model": {"provider": "offline", "offline": {"modelRef": {"name": "triage-model", "key": "model.json.gz"}}},
        "fallbackModel": {
            "provider": "openai",
            "name": "gpt-4o-mini",
            "apiKeySecretRef": {"name": "llm-keys", "key": "openai"},
            "confidenceThreshold": 0.7,
        },
    },
}


def test_a_trained_offline_model_is_mounted_and_named_in_the_config() -> None:
    desired = build.build_desired(SupportAgent.from_body(CASCADE), SETTINGS, None, {}, "digest-1")
    assert desired.config.model.model_dir == build.OFFLINE_MODEL_DIR
    pod = desired.children[3]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "offline-model")
    assert volume["configMap"] == {
        "name": "triage-model",
        "items": [{"key": "model.json.gz", "path": build.OFFLINE_MODEL_FILE}],
    }
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "offline-model", "mountPath": build.OFFLINE_MODEL_DIR, "readOnly": True} in mounts


def test_a_retrained_model_rolls_the_pods() -> None:
    agent = SupportAgent.from_body(CASCADE)
    first = build.build_desired(agent, SETTINGS, None, {}, "digest-1").config_hash
    assert build.build_desired(agent, SETTINGS, None, {}, "digest-1").config_hash == first
    assert build.build_desired(agent, SETTINGS, None, {}, "digest-2").config_hash != first


def test_a_fallback_model_gets_its_own_threshold_and_api_key_variable() -> None:
    desired = build.build_desired(SupportAgent.from_body(CASCADE), SETTINGS, None, {}, "d")
    config = desired.config
    assert config.fallback_model is not None
    assert (config.fallback_model.provider.value, config.fallback_model.name) == ("openai", "gpt-4o-mini")
    assert config.fallback_model.api_key_env == build.FALLBACK_API_KEY_ENV
    assert config.triage is not None and config.triage.fallback_threshold == 0.7
    assert config.triage.confidence_threshold == 0.9
    env = desired.children[3]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": build.FALLBACK_API_KEY_ENV,
        "valueFrom": {"secretKeyRef": {"name": "llm-keys", "key": "openai"}},
    } in env
    assert [(r.name, r.key) for r in desired.secret_refs] == [("llm-keys", "openai")]
    assert "sk-" not in desired.children[1]["data"][CONFIG_KEY]


def test_the_rendered_config_text_is_the_same_from_the_cache_as_rendered_afresh() -> None:
    body = {**SPECIALIST, "spec": {**SPECIALIST["spec"], "prompt": {"configMapKeyRef": {"name": "p", "key": "k"}}}}
    agent = SupportAgent.from_body(body)
    first = build.render_config(agent, SETTINGS, "Réponds en français: « 1 » — ok\n" + "x" * 200)
    again = build.render_config(agent, SETTINGS, "Réponds en français: « 1 » — ok\n" + "x" * 200)
    uncached = yaml.safe_dump(first.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)
    assert first.to_yaml() == uncached
    assert again.to_yaml() == uncached  # served from the cache
    other = build.render_config(agent, SETTINGS, "Answer billing questions.")
    assert other.to_yaml() != uncached
    assert AgentConfig.from_yaml(other.to_yaml()).system_prompt == "Answer billing questions."
