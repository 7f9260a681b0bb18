"""What `srs kind up` hands to kind and to the node image: consistent names, nothing pulled."""

from __future__ import annotations

import pytest
import yaml

from devstack import images, kind, settings

pytestmark = pytest.mark.unit


def test_kubeadm_is_pointed_at_the_images_preloaded_in_the_node() -> None:
    config = yaml.safe_load(kind.cluster_config(images.NODE_IMAGE, [40000, 40001, 40002]))
    node = config["nodes"][0]
    assert node["image"] == images.NODE_IMAGE
    # One host port per broker, reserved for three when the cluster is created.
    assert node["extraPortMappings"] == [
        {"containerPort": kind.KAFKA_NODE_PORT + n, "hostPort": 40000 + n, "listenAddress": "127.0.0.1"}
        for n in range(3)
    ]
    assert config["networking"]["apiServerAddress"] == "127.0.0.1"
    patch = yaml.safe_load(config["kubeadmConfigPatches"][0])
    preloaded = set(images.node_component_images()) | {images.kube_proxy_image()}
    repo = patch["imageRepository"]
    k = settings.KUBERNETES_VERSION
    wanted = {
        f"{repo}/kube-apiserver:{k}",
        f"{repo}/kube-controller-manager:{k}",
        f"{repo}/kube-scheduler:{k}",
        f"{repo}/kube-proxy:{k}",
        f"{repo}/etcd:{patch['etcd']['local']['imageTag']}",
        f"{repo}/coredns:{patch['dns']['imageTag']}",
    }
    assert wanted <= preloaded
    # containerd's sandbox image is one of them too: no pod ever needs a registry.
    assert images.sandbox_image() in preloaded


def test_a_ready_made_node_image_gets_kinds_defaults() -> None:
    config = yaml.safe_load(kind.cluster_config("kindest/node:v1.34.0", [40000], local_node=False))
    assert "kubeadmConfigPatches" not in config
    assert config["networking"]["kubeProxyMode"] == "iptables"
