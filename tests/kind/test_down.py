"""Runs last in the kind suite (conftest.py moves it there): `srs kind down` removes the
cluster, every container it ran and the Docker network it created."""

from __future__ import annotations

import subprocess

import pytest

from devstack import kind
from devstack.docker_engine import docker
from tests.kind.conftest import Cluster

pytestmark = pytest.mark.kind


def test_kind_down_leaves_no_cluster_container_or_network(cluster: Cluster) -> None:
    name = cluster.state.cluster
    label = f"label=io.x-k8s.kind.cluster={name}"
    assert docker("ps", "--all", "--quiet", "--filter", label).strip(), "the cluster's node should exist before down"

    kind.down()

    assert docker("ps", "--all", "--quiet", "--filter", label).strip() == ""
    assert docker("network", "ls", "--quiet", "--filter", f"name=^{kind.NETWORK}$").strip() == ""
    clusters = subprocess.run(["kind", "get", "clusters"], env=cluster.env, capture_output=True, text=True, check=True)
    assert name not in clusters.stdout.split()
