"""A real Argo CD syncs examples/gitops into the local cluster and reports the health the
srs checks compute.

Argo CD v3 (application controller + repo server, built from the Go module proxy and
cached), Redis from Debian, Argo CD's CRDs, and a git repository served on loopback by
``git daemon``. ``argocd-cm`` carries gitops/argocd/install/argocd-cm.yaml as generated.
The Application is examples/gitops/apps/support-team.yaml pointed at that repository;
the operator runs as in the other scenario tests. Topic names are made unique per test
(Kafka is shared by every namespace).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devstack import argocd
from devstack.settings import default_paths
from tests.harness import Infra, create_test_namespace, wait_for
from tests.integration.gitops_support import Objects, team_files
from tests.integration.operator_harness import condition

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "examples" / "gitops"
ARGO = ("argoproj.io", "v1alpha1")


def _apply(api_client: client.ApiClient, docs: list[dict[str, Any]]) -> None:
    """Server-side apply of cluster-scoped CRDs."""
    ext = client.ApiextensionsV1Api(api_client)
    for d in docs:
        ext.patch_custom_resource_definition(
            d["metadata"]["name"], d, field_manager="srs-tests", force=True,
            _content_type="application/apply-patch+yaml",
        )  # fmt: skip


@pytest.fixture(scope="module")
def argo_cd(
    infra: Infra, api_client: client.ApiClient, core_v1: client.CoreV1Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[argocd.LocalArgoCD]:
    """Argo CD's processes, watching Applications in a fresh namespace of the test cluster."""

    def progress(message: str) -> None:
        print(f"[argocd] {message}", flush=True)

    exe = argocd.ensure_binary(default_paths(), progress)
    argocd.ensure_redis(progress)
    crds = [yaml.safe_load(p.read_text()) for p in argocd.crd_files()]
    _apply(api_client, crds)
    ext = client.ApiextensionsV1Api(api_client)
    wait_for(
        "Argo CD CRDs established",
        lambda: all(
            any(c.type == "Established" and c.status == "True" for c in ext.read_custom_resource_definition(
                d["metadata"]["name"]).status.conditions or [])
            for d in crds
        ),
        timeout=30,
    )  # fmt: skip

    namespace = f"srs-test-argocd-{uuid.uuid4().hex[:8]}"
    create_test_namespace(core_v1, namespace)
    part_of = {"app.kubernetes.io/part-of": "argocd"}
    cm = yaml.safe_load((ROOT / "gitops" / "argocd" / "install" / "argocd-cm.yaml").read_text())
    core_v1.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="argocd-cm", labels=cm["metadata"]["labels"]),
            data={**cm["data"], "timeout.reconciliation": "10s"},
        ),
    )
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="argocd-secret", labels=part_of),
            string_data={"server.secretkey": secrets.token_urlsafe(32)},
        ),
    )
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        *ARGO, namespace, "appprojects",
        {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": "default"},
            "spec": {
                "sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}],
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            },
        },
    )  # fmt: skip
    # Argo CD reaches "https://kubernetes.default.svc" only from inside a pod: register the
    # stack's API server as a cluster (a cluster Secret) and deploy to it by its address.
    server, token, ca = _cluster_of(infra.kubeconfig)
    config = {"bearerToken": token, "tlsClientConfig": {"caData": base64.b64encode(ca).decode()}}
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="local-stack", labels={"argocd.argoproj.io/secret-type": "cluster"}),
            string_data={"name": "local-stack", "server": server, "config": json.dumps(config)},
        ),
    )
    local = argocd.LocalArgoCD(exe, infra.kubeconfig, namespace, tmp_path_factory.mktemp("argocd"))
    try:
        local.start()
        yield local
    finally:
        print(local.logs())
        local.stop()
        with contextlib.suppress(client.ApiException):
            core_v1.delete_namespace(namespace)


def _cluster_of(kubeconfig: str) -> tuple[str, str, bytes]:
    """API server URL, bearer token and CA certificate of the kubeconfig's current context."""
    cfg = yaml.safe_load(Path(kubeconfig).read_text())
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    if "certificate-authority-data" in cluster:
        ca = base64.b64decode(cluster["certificate-authority-data"])
    else:
        ca = Path(cluster["certificate-authority"]).read_bytes()
    return cluster["server"], user["token"], ca


class Repo:
    """A git repository Argo CD reads (bare, served by git daemon) and a work tree to push from."""

    def __init__(self, argo: argocd.LocalArgoCD, work: Path, name: str) -> None:
        self.url = argo.repo_url(name)
        bare = argo.git_root / name
        self._git("init", "--bare", "--initial-branch=main", str(bare), cwd=work)
        self.work = work / "work"
        self._git("clone", str(bare), str(self.work), cwd=work)

    def _git(self, *args: str, cwd: Path) -> None:
        subprocess.run(
            ["git", "-c", "user.name=srs tests", "-c", "user.email=tests@srs.invalid", *args],
            cwd=cwd, check=True, capture_output=True,
        )  # fmt: skip

    def push(self, files: dict[str, str], message: str) -> None:
        for rel, text in files.items():
            path = self.work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self._git("add", "-A", cwd=self.work)
        self._git("commit", "-m", message, cwd=self.work)
        self._git("push", "origin", "HEAD:main", cwd=self.work)


class Application:
    def __init__(self, api_client: client.ApiClient, namespace: str, name: str) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.namespace, self.name = namespace, name

    def get(self) -> dict[str, Any]:
        return dict(self.api.get_namespaced_custom_object(*ARGO, self.namespace, "applications", self.name))

    def delete(self) -> None:
        with contextlib.suppress(client.ApiException):
            self.api.delete_namespaced_custom_object(*ARGO, self.namespace, "applications", self.name)
        wait_for(f"Application {self.name} deleted", lambda: not self._exists(), timeout=60)

    def _exists(self) -> bool:
        try:
            self.get()
        except client.ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def refresh(self) -> None:
        patch = {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}
        self.api.patch_namespaced_custom_object(*ARGO, self.namespace, "applications", self.name, patch)

    def wait(self, sync: str, health: str, revision: str | None = None, timeout: float = 240) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def check() -> bool:
            nonlocal seen
            seen = self.get()
            status = seen.get("status") or {}
            return (
                (status.get("sync") or {}).get("status") == sync
                and (status.get("health") or {}).get("status") == health
                and (revision is None or (status.get("sync") or {}).get("revision") == revision)
            )

        try:
            wait_for(f"Application {self.name}: {sync}/{health}", check, timeout=timeout)
        except AssertionError as e:
            status = seen.get("status") or {}
            summary = {k: status.get(k) for k in ("sync", "health", "operationState", "conditions")}
            raise AssertionError(f"{e}; last status: {summary}; resources: {_resources(seen)}") from None
        return seen


def _resources(app: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (r["kind"], r["name"], (r.get("health") or {}).get("status", ""), (r.get("health") or {}).get("message", ""))
        for r in (app.get("status") or {}).get("resources") or []
    ]


def _create_application(
    argo_cd: argocd.LocalArgoCD, infra: Infra, api_client: client.ApiClient, repo: Repo, namespace: str
) -> Application:
    """examples/gitops/apps/support-team.yaml, pointed at ``repo`` and the stack's API server."""
    app_doc = yaml.safe_load((GITOPS / "apps" / "support-team.yaml").read_text())
    app_doc["metadata"] = {"name": f"srs-{namespace}", "namespace": argo_cd.namespace}
    app_doc["spec"]["source"]["repoURL"] = repo.url
    app_doc["spec"]["source"]["path"] = "teams/support"
    app_doc["spec"]["destination"] = {"server": _cluster_of(infra.kubeconfig)[0], "namespace": namespace}
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        *ARGO, argo_cd.namespace, "applications", app_doc
    )
    return Application(api_client, argo_cd.namespace, app_doc["metadata"]["name"])


def _head(repo: Repo) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo.work, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.timeout(3600)  # a cold machine builds Argo CD first (~15-25 min)
def test_argo_cd_syncs_the_example_reports_degraded_with_the_operators_message_and_recovers(
    argo_cd: argocd.LocalArgoCD,
    infra: Infra,
    api_client: client.ApiClient,
    agent_namespace: str,
    tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    repo = Repo(argo_cd, tmp_path, f"srs-{suffix}.git")
    files = team_files(suffix)
    repo.push(files, "the support team's topics and agents")

    app = _create_application(argo_cd, infra, api_client, repo, agent_namespace)
    try:
        _sync_break_and_fix(app, repo, files, suffix, api_client, agent_namespace)
    finally:
        app.delete()  # without Argo CD's resources finalizer: the resources stay …
        Objects(api_client, agent_namespace).delete_topics()  # … and the topics go while the operator runs


def _sync_break_and_fix(
    app: Application,
    repo: Repo,
    files: dict[str, str],
    suffix: str,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    started = time.monotonic()
    synced = app.wait("Synced", "Healthy", revision=_head(repo))
    print(f"[argocd] Synced/Healthy {time.monotonic() - started:.1f}s after the Application was created")
    resources = _resources(synced)
    assert {(k, h) for k, _, h, _ in resources} == {("TicketTopic", "Healthy"), ("SupportAgent", "Healthy")}
    assert ("SupportAgent", "billing", "Healthy", "1 of 1 replicas updated and available") in resources
    assert synced["status"]["operationState"]["phase"] == "Succeeded"

    # A breaking change: Kafka topics keep their replication factor, the operator says so.
    topics = "teams/support/topics.yaml"
    dlq_spec = f"  name: ticket-{suffix}.dlq\n"
    assert dlq_spec in files[topics]
    head, tail = files[topics].split(dlq_spec)
    breaking = head + dlq_spec + tail.replace("spec:\n", "spec:\n  replicationFactor: 2\n", 1)
    repo.push({topics: breaking}, "raise the replication factor of the dead-letter topic")
    app.refresh()
    started = time.monotonic()
    degraded = app.wait("Synced", "Degraded", revision=_head(repo))
    print(f"[argocd] Degraded {time.monotonic() - started:.1f}s after the breaking push")
    [dlq] = [r for r in _resources(degraded) if r[1] == f"ticket-{suffix}.dlq"]
    live = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "srs.dev", "v1alpha1", namespace, "tickettopics", f"ticket-{suffix}.dlq"
    )
    ready = condition(live, "Ready")
    assert ready["reason"] == "NotSupported"
    assert dlq == ("TicketTopic", f"ticket-{suffix}.dlq", "Degraded", ready["message"])
    assert "spec.replicationFactor is 2 but the topic has 1" in ready["message"]

    # The fix: back to no factor in the spec (what the topic has is fine).
    repo.push({topics: files[topics]}, "the dead-letter topic keeps the replication factor it has")
    app.refresh()
    started = time.monotonic()
    recovered = app.wait("Synced", "Healthy", revision=_head(repo))
    print(f"[argocd] Healthy again {time.monotonic() - started:.1f}s after the fix was pushed")
    assert {h for _, _, h, _ in _resources(recovered)} == {"Healthy"}


def test_a_suspended_agent_parks_a_sync_only_when_a_later_wave_waits_for_it(
    argo_cd: argocd.LocalArgoCD,
    infra: Infra,
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    agent_namespace: str,
    tmp_path: Path,
) -> None:
    """What docs/gitops.md says about SCALED_TO_ZERO, on a real Argo CD. Argo CD waits for
    every wave but the last to be Healthy (or Degraded): an agent scaled to zero
    (Suspended) in the example's last wave lets syncs finish; with a later wave the sync
    waits for it for good — until argocd-cm says "Healthy" for scaled to zero."""
    suffix = uuid.uuid4().hex[:6]
    repo = Repo(argo_cd, tmp_path, f"srs-{suffix}.git")
    files = team_files(suffix)
    repo.push(files, "the support team's topics and agents")
    app = _create_application(argo_cd, infra, api_client, repo, agent_namespace)
    objects = Objects(api_client, agent_namespace)
    key = "resource.customizations.health.srs.dev_SupportAgent"
    original = core_v1.read_namespaced_config_map("argocd-cm", argo_cd.namespace).data[key]
    try:
        app.wait("Synced", "Healthy", revision=_head(repo))
        # Someone scales the triage agent to zero on purpose; spec.replicas is the
        # autoscaler's (ignoreDifferences), so Argo CD leaves it alone and calls it Suspended.
        objects.patch_spec("SupportAgent", "triage", {"replicas": 0})
        app.wait("Synced", "Suspended")

        # A change in git: every resource is synced again, wave by wave; the agents are the
        # last wave, which Argo CD does not wait for.
        topics = "teams/support/topics.yaml"
        longer = files[topics].replace('retention.ms: "604800000"', 'retention.ms: "691200000"', 1)
        assert longer != files[topics]
        repo.push({topics: longer}, "keep ticket.events a day longer")
        app.refresh()
        head = _head(repo)
        operation: dict[str, Any] = {}

        def synced_head() -> bool:
            nonlocal operation
            operation = (app.get().get("status") or {}).get("operationState") or {}
            return operation.get("phase") == "Succeeded" and operation.get("syncResult", {}).get("revision") == head

        try:
            wait_for("the sync of the change to succeed", synced_head, timeout=120)
        except AssertionError as e:
            raise AssertionError(f"{e}; operation {operation.get('phase')}: {operation.get('message')}") from None
        app.wait("Synced", "Suspended", revision=head)

        # A wave after the agents: now the sync waits for the Suspended agent, for good.
        later = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "after-agents", "annotations": {"argocd.argoproj.io/sync-wave": "3"}},
            "data": {"note": "synced after the agents"},
        }
        repo.push({"teams/support/after-agents.yaml": yaml.safe_dump(later)}, "a resource in wave 3")
        app.refresh()
        parked: dict[str, Any] = {}

        def waiting_on_triage() -> bool:
            nonlocal parked
            parked = (app.get().get("status") or {}).get("operationState") or {}
            return parked.get("phase") == "Running" and "srs.dev/SupportAgent/triage" in parked.get("message", "")

        try:
            wait_for("the sync to wait for the Suspended agent", waiting_on_triage, timeout=120)
        except AssertionError as e:
            raise AssertionError(f"{e}; operation {parked}") from None
        assert parked["message"].startswith("waiting for healthy state of srs.dev/SupportAgent/triage")

        # SCALED_TO_ZERO = "Healthy" in argocd-cm: the same operation completes.
        healthy = original.replace('local SCALED_TO_ZERO = "Suspended"', 'local SCALED_TO_ZERO = "Healthy"')
        assert healthy != original
        core_v1.patch_namespaced_config_map("argocd-cm", argo_cd.namespace, {"data": {key: healthy}})
        app.wait("Synced", "Healthy", revision=_head(repo), timeout=120)
        # The app reads Synced/Healthy a moment before the operation records its end.
        finished: dict[str, Any] = {}

        def operation_succeeded() -> bool:
            nonlocal finished
            finished = app.get()
            return ((finished.get("status") or {}).get("operationState") or {}).get("phase") == "Succeeded"

        try:
            wait_for("the parked sync to complete", operation_succeeded, timeout=60)
        except AssertionError as e:
            raise AssertionError(f"{e}; operation {finished.get('status', {}).get('operationState')}") from None
        done = finished
        [triage] = [r for r in _resources(done) if r[1] == "triage"]
        assert triage == ("SupportAgent", "triage", "Healthy", "Scaled to zero: spec.replicas is 0, no pods run")
    finally:
        core_v1.patch_namespaced_config_map("argocd-cm", argo_cd.namespace, {"data": {key: original}})
        app.delete()
        objects.delete_topics()
