"""The local pod runner does the kubelet's job for agent pods on the fake node: one
process per Ready pod, with the pod's env (Secrets resolved) and mounted ConfigMaps."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest
from kubernetes import client

from devstack.podrunner import DEFAULT_SELECTOR, PodRunner
from tests.harness import wait_for

pytestmark = pytest.mark.integration

# Stands in for `srs agent --config …`: records what it was given, then waits to be stopped.
SCRIPT = """
import os, pathlib, sys, time
out = pathlib.Path(sys.argv[2]) / os.environ["POD_NAME"]
out.write_text(os.environ["API_KEY"] + "|" + pathlib.Path(sys.argv[1]).read_text())
while True:
    time.sleep(0.1)
"""


def _deployment(name: str, replicas: int, out_dir: Path) -> client.V1Deployment:
    labels = {"app.kubernetes.io/instance": name, "app.kubernetes.io/managed-by": "srs-operator"}
    container = client.V1Container(
        name="agent",
        image="srs:dev",
        command=[sys.executable, "-c", SCRIPT],
        args=["/etc/srs/agent.yaml", str(out_dir)],
        env=[
            client.V1EnvVar(
                name="API_KEY",
                value_from=client.V1EnvVarSource(secret_key_ref=client.V1SecretKeySelector(name="llm", key="key")),
            ),
            client.V1EnvVar(
                name="POD_NAME",
                value_from=client.V1EnvVarSource(field_ref=client.V1ObjectFieldSelector(field_path="metadata.name")),
            ),
        ],
        volume_mounts=[client.V1VolumeMount(name="config", mount_path="/etc/srs", read_only=True)],
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[container],
                    termination_grace_period_seconds=5,
                    volumes=[
                        client.V1Volume(name="config", config_map=client.V1ConfigMapVolumeSource(name="agent-config"))
                    ],
                ),
            ),
        ),
    )


def test_each_ready_pod_gets_one_process_with_its_config_and_secret_env(
    namespace: str, core_v1: client.CoreV1Api, apps_v1: client.AppsV1Api, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    core_v1.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="agent-config"), data={"agent.yaml": "role: x"})
    )
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="llm"), data={"key": base64.b64encode(b"s3cret").decode()}),
    )
    runner = PodRunner(core_v1, tmp_path / "pods", tmp_path / "logs", DEFAULT_SELECTOR)
    ours = lambda: {k: p for k, p in runner.processes.items() if k.startswith(namespace + "/")}  # noqa: E731

    def settle(expected: int) -> bool:
        runner.sync()
        return len(ours()) == expected and len(list(out.iterdir())) >= expected

    try:
        apps_v1.create_namespaced_deployment(namespace, _deployment("billing", 1, out))
        wait_for("one process", lambda: settle(1))
        (pod_name,) = [k.split("/")[1] for k in ours()]
        wait_for("the process wrote its inputs", lambda: (out / pod_name).exists() and (out / pod_name).read_text())
        assert (out / pod_name).read_text() == "s3cret|role: x"

        apps_v1.patch_namespaced_deployment_scale(namespace=namespace, name="billing", body={"spec": {"replicas": 3}})
        wait_for("three processes", lambda: settle(3))
        assert len({p.proc.pid for p in ours().values()}) == 3

        victim_key, victim = next(iter(ours().items()))
        core_v1.delete_namespaced_pod(victim_key.split("/")[1], namespace, grace_period_seconds=0)
        wait_for("the deleted pod's process ended", lambda: (runner.sync(), victim.proc.poll() is not None)[1])
        wait_for("a replacement process", lambda: settle(3) and victim_key not in ours())

        apps_v1.delete_namespaced_deployment("billing", namespace, propagation_policy="Foreground")
        procs = [p.proc for p in ours().values()]
        wait_for("all processes ended", lambda: settle(0))
        assert all(p.poll() is not None for p in procs)
    finally:
        runner.stop_all()
