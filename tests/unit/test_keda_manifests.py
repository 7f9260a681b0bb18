"""What `srs kind up` changes in KEDA's own manifests: the images built here, never pulled, a
small CPU request, a rolling digest — and nothing else."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from devstack import images, keda

pytestmark = pytest.mark.unit

#: The shape of upstream's rendered config/default (trimmed): a Deployment per component,
#: and the objects the operator's certificate rotation patches.
UPSTREAM = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: keda-operator, namespace: keda}
spec:
  template:
    metadata: {labels: {app: keda-operator}}
    spec:
      containers:
        - name: keda-operator
          image: example.invalid/kedacore/keda:main
          command: [/keda]
          args: [--leader-elect, --enable-cert-rotation=true]
          imagePullPolicy: Always
          resources:
            requests: {cpu: 100m, memory: 100Mi}
            limits: {cpu: 1000m, memory: 1000Mi}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: keda-metrics-apiserver, namespace: keda}
spec:
  template:
    metadata: {labels: {app: keda-metrics-apiserver}}
    spec:
      containers:
        - name: keda-metrics-apiserver
          image: example.invalid/kedacore/keda-metrics-apiserver:main
          command: [/keda-adapter]
          imagePullPolicy: Always
          resources:
            requests: {cpu: 100m, memory: 100Mi}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: keda-admission, namespace: keda}
spec:
  template:
    metadata: {labels: {app: keda-admission-webhooks}}
    spec:
      containers:
        - name: keda-admission-webhooks
          image: example.invalid/kedacore/keda-admission-webhooks:main
          command: [/keda-admission-webhooks]
          imagePullPolicy: Always
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  service: {name: keda-metrics-apiserver, namespace: keda}
"""


def _upstream() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(UPSTREAM) if d]


def _containers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        c["name"]: c for d in docs if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]
    }


def test_each_component_runs_the_image_built_here_and_never_pulls() -> None:
    digests = {image: f"digest-of-{image}" for image in images.KEDA_IMAGES.values()}
    docs = keda.manifests(_upstream(), images.KEDA_IMAGES, digests)
    containers = _containers(docs)
    for container, binary in keda.BINARIES.items():
        image = images.KEDA_IMAGES[binary]
        assert containers[container]["image"] == image
        assert containers[container]["imagePullPolicy"] == "Never"
        # The binary the container runs is the one its image holds at / (upstream's command).
        assert containers[container]["command"] == [f"/{binary}"]
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations[keda.IMAGE_DIGEST_ANNOTATION] == f"digest-of-{container['image']}"
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"} == set(keda.DEPLOYMENTS)


def test_only_the_cpu_request_changes_the_limits_and_the_rest_stay_upstreams() -> None:
    upstream = _upstream()
    before = copy.deepcopy(upstream)
    docs = keda.manifests(upstream, images.KEDA_IMAGES, {})
    assert upstream == before, "the input is not modified"
    operator = _containers(docs)["keda-operator"]
    assert operator["resources"] == {
        "requests": {"cpu": keda.CPU_REQUEST, "memory": "100Mi"},
        "limits": {"cpu": "1000m", "memory": "1000Mi"},
    }
    assert operator["args"] == ["--leader-elect", "--enable-cert-rotation=true"]
    assert _containers(docs)["keda-admission-webhooks"]["resources"] == {"requests": {"cpu": keda.CPU_REQUEST}}
    assert docs[-1] == before[-1]  # the APIService: upstream's


def test_an_unknown_component_is_refused_not_left_pulling() -> None:
    docs = _upstream()
    docs[0]["spec"]["template"]["spec"]["containers"][0]["name"] = "keda-something-new"
    with pytest.raises(keda.KedaUnavailable, match="unknown container 'keda-something-new'"):
        keda.manifests(docs, images.KEDA_IMAGES, {})


def test_every_binary_has_an_image_named_after_upstreams() -> None:
    assert set(images.KEDA_IMAGES) == set(keda.BINARIES.values())
    assert images.KEDA_IMAGES["keda-adapter"].startswith("srs-keda-metrics-apiserver:")
