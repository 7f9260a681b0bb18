"""KEDA for the kind cluster: built from its Go module, installed from its own manifests.

KEDA scales the agents on their consumer lag (issue 20). Its three programs — the operator
(``keda``), the metrics API server (``keda-adapter``, serving ``external.metrics.k8s.io``)
and the admission webhooks (``keda-admission-webhooks``) — are built by
``scripts/build-keda.sh`` from ``github.com/kedacore/keda/v2`` at :data:`settings.KEDA_VERSION`
and cached by version, Go toolchain and recipe digest, like Argo CD. ``devstack/images.py``
puts each into an image laid out as upstream's (one static binary at ``/``, uid 65532).

The manifests are upstream's: ``config/default`` of the same module, rendered offline by
``kubectl kustomize``; :func:`manifests` changes only what a cluster without a registry
needs (the images, never pulled) and rolls the pods when an image is rebuilt. The operator
keeps upstream's certificate rotation (``--enable-cert-rotation``): it creates the Secret
``kedaorg-certs`` and writes the CA into the APIService and the webhook configuration.

:func:`crd_files` gives KEDA's CRDs from the same module, for tests on the local stack
(a plain kube-apiserver, no KEDA running) that need ``ScaledObject`` served.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from devstack import locks, settings
from devstack.settings import Paths

Progress = Callable[[str], None]

MODULE = "github.com/kedacore/keda/v2"
BUILD_SCRIPT = Path(__file__).parent / "scripts" / "build-keda.sh"
#: The namespace upstream's manifests install KEDA into.
NAMESPACE = "keda"
#: Container name in upstream's Deployments -> the binary it runs (the image's only file of note).
BINARIES = {
    "keda-operator": "keda",
    "keda-metrics-apiserver": "keda-adapter",
    "keda-admission-webhooks": "keda-admission-webhooks",
}
#: upstream's Deployment names, in the order they are waited for.
DEPLOYMENTS = ("keda-operator", "keda-metrics-apiserver", "keda-admission")
#: The APIService the metrics server answers for (the HPA reads external metrics through it).
API_SERVICE = "v1beta1.external.metrics.k8s.io"
#: upstream's ValidatingWebhookConfiguration (ScaledObject, ScaledJob, TriggerAuthentication, …).
WEBHOOKS = "keda-admission"
#: Pod-template annotation carrying the image's source digest: a rebuilt image (same tag) rolls the pods.
IMAGE_DIGEST_ANNOTATION = "srs.dev/image-digest"
#: CPU each component asks the scheduler for. Upstream asks 100m each; on the one-node kind
#: cluster (2 CPUs of requests for the control plane, Kafka, the operator, the model server
#: and every agent replica) 300m would leave an agent scaled up by KEDA itself unschedulable.
#: Only the request changes: the limits stay upstream's.
CPU_REQUEST = "10m"


class KedaUnavailable(RuntimeError):
    """KEDA cannot be built or installed here; the message says why."""


def _go_env() -> dict[str, str]:
    return {**os.environ, "GOTOOLCHAIN": settings.KEDA_GO_TOOLCHAIN, "GOFLAGS": "-mod=mod"}


def module_dir() -> Path:
    """KEDA's module source at the pinned version, from the Go module proxy (cached by Go)."""
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"{MODULE}@{settings.KEDA_VERSION}"],
            capture_output=True, text=True, check=True, env=_go_env(),
        )  # fmt: skip
    except FileNotFoundError as e:
        raise KedaUnavailable("KEDA's sources come from the Go module proxy: Go 1.24+ is needed on PATH") from e
    except subprocess.CalledProcessError as e:
        # The go command reports a module's own error in its JSON answer, others on stderr.
        why = e.stderr.strip() or e.stdout.strip()
        raise KedaUnavailable(f"go mod download {MODULE}@{settings.KEDA_VERSION} failed: {why}") from e
    return Path(json.loads(out.stdout)["Dir"])


def crd_files() -> list[Path]:
    """KEDA's CRDs (``config/crd/bases/*.yaml``: ScaledObject, ScaledJob, TriggerAuthentication,
    ClusterTriggerAuthentication, CloudEventSource, ClusterCloudEventSource) at
    :data:`settings.KEDA_VERSION`, from the module source in Go's module cache."""
    return sorted((module_dir() / "config" / "crd" / "bases").glob("*.yaml"))


def binary_dir(paths: Paths) -> Path:
    return paths.cache / (
        f"keda-{settings.KEDA_VERSION}-{settings.KEDA_GO_TOOLCHAIN}-{settings.recipe_digest(*settings.KEDA_RECIPE)}"
    )


def ensure_binaries(paths: Paths, progress: Progress) -> Path:
    """The folder holding ``keda``, ``keda-adapter`` and ``keda-admission-webhooks``, built into
    the cache on first use (~13 CPU-min, 2.4 GB of modules, 3.2 GB of build cache, 2.8 GB peak)."""
    out = binary_dir(paths)

    def built() -> bool:
        return all((out / b).is_file() for b in BINARIES.values())

    if built():
        return out
    with locks.exclusive(paths.cache, out.name, f"KEDA {settings.KEDA_VERSION}", progress):
        if built():
            return out
        progress(
            f"building KEDA {settings.KEDA_VERSION} from Go sources into {out} "
            "(first run only, ~13 CPU-min: 7-13 min on 2 shared cores)"
        )
        done = subprocess.run(["bash", str(BUILD_SCRIPT), str(out), settings.KEDA_VERSION, settings.KEDA_GO_TOOLCHAIN])
    if done.returncode != 0 or not built():
        raise KedaUnavailable(f"building KEDA {settings.KEDA_VERSION} failed (output above)")
    return out


def manifests(
    upstream: Iterable[dict[str, Any]], images: Mapping[str, str], digests: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Upstream's rendered manifests (``kubectl kustomize config/default``), changed only where
    a one-node cluster without a registry needs it: each Deployment's container runs the image
    built here (``images``: binary name -> image) and never pulls, asks for :data:`CPU_REQUEST`,
    and its pod template carries the image's source digest (``digests``: image -> digest), so a
    rebuilt image rolls the pods. Everything else (RBAC, the APIService, the webhooks, the
    operator's ``--enable-cert-rotation``) is upstream's. Pure: the input is not modified."""
    out = []
    for doc in upstream:
        doc = copy.deepcopy(doc)
        if doc.get("kind") == "Deployment":
            template = doc["spec"]["template"]
            for container in template["spec"]["containers"]:
                binary = BINARIES.get(container["name"])
                if binary is None:
                    raise KedaUnavailable(
                        f"KEDA {settings.KEDA_VERSION}: unknown container {container['name']!r} in Deployment "
                        f"{doc['metadata']['name']} (known: {', '.join(BINARIES)})"
                    )
                image = images[binary]
                container["image"] = image
                container["imagePullPolicy"] = "Never"
                container.setdefault("resources", {}).setdefault("requests", {})["cpu"] = CPU_REQUEST
                annotations = template["metadata"].setdefault("annotations", {})
                annotations[IMAGE_DIGEST_ANNOTATION] = digests.get(image) or "none"
        out.append(doc)
    return out
