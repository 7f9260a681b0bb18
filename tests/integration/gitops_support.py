"""Shared pieces of the GitOps scenario tests: srs objects judged by the Argo CD health
checks, and examples/gitops/teams/support made unique per test."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from gitops.argocd import interpreter
from gitops.argocd.interpreter import Health
from tests.harness import wait_for
from tests.integration.operator_harness import GROUP, VERSION

ROOT = Path(__file__).resolve().parents[2]
TEAM = ROOT / "examples" / "gitops" / "teams" / "support"
AGENT_LUA = interpreter.health_script("srs.dev/SupportAgent")
TOPIC_LUA = interpreter.health_script("srs.dev/TicketTopic")
PLURALS = {"SupportAgent": "supportagents", "TicketTopic": "tickettopics"}


def health(obj: dict[str, Any]) -> Health:
    """What the health check says of ``obj``. With ``SRS_ARGOCD_CAPTURE_DIR`` set, every
    object judged is also written there (name, health) — material for testdata/."""
    script = AGENT_LUA if obj["kind"] == "SupportAgent" else TOPIC_LUA
    [result] = interpreter.evaluate(script, [obj])
    if capture := os.environ.get("SRS_ARGOCD_CAPTURE_DIR"):
        name = f"{obj['kind']}-{obj['metadata']['name']}-{result.status}.yaml"
        (Path(capture) / name).write_text(yaml.safe_dump(obj, sort_keys=False))
    return result


class Objects:
    """srs objects in one namespace, through the admin client."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        plural = PLURALS[body["kind"]]
        return dict(self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return dict(self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURALS[kind], name))

    def patch_spec(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        plural = PLURALS[kind]
        return dict(
            self.api.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name, {"spec": spec})
        )

    def delete_topics(self) -> None:
        """Delete every SupportAgent and TicketTopic and wait until the operator has released
        the topics. An
        operator that watches a namespace pattern stops watching a namespace once it is
        terminating, so TicketTopics left for the namespace deletion keep their finalizer
        and the namespace never goes away."""
        # The agents first: the operator does not delete a topic (deletionPolicy Delete) that a
        # SupportAgent still reads or writes.
        for agent in self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "supportagents")["items"]:
            with contextlib.suppress(client.ApiException):
                self.api.delete_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "supportagents", agent["metadata"]["name"]
                )
        items = self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "tickettopics")["items"]
        for item in items:
            with contextlib.suppress(client.ApiException):
                self.api.delete_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "tickettopics", item["metadata"]["name"]
                )
        wait_for(
            "the TicketTopics to be released by the operator",
            lambda: not self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "tickettopics")["items"],
            timeout=90,
        )

    def wait_health(self, kind: str, name: str, status: str, timeout: float = 60) -> tuple[dict[str, Any], Health]:
        """Wait until the health check says ``status`` for the live object; return both."""
        seen: dict[str, Any] = {}
        judged = Health("")

        def check() -> bool:
            nonlocal seen, judged
            seen = self.get(kind, name)
            judged = health(seen)
            return judged.status == status

        try:
            wait_for(f"{kind} {name} to be {status}", check, timeout=timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}; last health {judged}, status {seen.get('status')}") from None
        return seen, judged


def team_manifests(suffix: str) -> list[dict[str, Any]]:
    """examples/gitops/teams/support with every topic name made unique (Kafka is shared by
    every namespace) and topics deleted with their TicketTopic."""
    docs = []
    for path in sorted(TEAM.glob("*.yaml")):
        text = path.read_text().replace("ticket.", f"ticket-{suffix}.")
        docs += [d for d in yaml.safe_load_all(text) if d]
    for d in docs:
        if d["kind"] == "TicketTopic":
            d["spec"]["deletionPolicy"] = "Delete"
    return docs


def team_files(suffix: str) -> dict[str, str]:
    """The same as files (path under teams/support → text), for a git repository."""
    out = {}
    for path in sorted(TEAM.glob("*.yaml")):
        text = path.read_text().replace("ticket.", f"ticket-{suffix}.")
        # Every TicketTopic's spec (they are all in topics.yaml): deleted with its topic.
        text = "\n---\n".join(
            doc.replace("\nspec:\n", "\nspec:\n  deletionPolicy: Delete\n", 1)
            if "\nkind: TicketTopic\n" in doc
            else doc
            for doc in text.split("\n---\n")
        )
        out[f"teams/support/{path.name}"] = text
    return out
