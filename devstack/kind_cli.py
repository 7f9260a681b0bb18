"""Create a kind cluster whose node image, control-plane images, Kafka image and srs image are
all built on this machine (Go module proxy, Debian packages, Maven Central, PyPI), run Kafka
(three brokers with TLS and SCRAM by default; --brokers 1: one plaintext broker) and KEDA
(built from its Go module, upstream's manifests; --no-keda skips it) in it, install the
operator with the Helm chart and write .kind/env (KUBECONFIG, KAFKA_BOOTSTRAP_SERVERS,
KAFKA_CLIENT_CONFIG, kind/kubectl/helm/kcat on PATH). Installs Debian's docker.io and starts
dockerd when no Docker engine answers (as root). The first `up` builds for ~20-30 min on 2
cores; later runs reuse the caches ($SRS_CACHE_DIR, Docker's image store)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from typing import Any


def _reporting(prog: str, work: Callable[[], int]) -> int:
    """Run ``work``: a missing Docker engine or a broker count the cluster cannot have exits 2,
    a failed build or tool step 1."""
    from devstack import docker_engine, kind
    from devstack.reporting import run_reporting

    codes = {docker_engine.EngineUnavailable: 2, kind.BrokerCountError: 2, subprocess.CalledProcessError: 1}
    return run_reporting(prog, work, codes)


def _kind(args: argparse.Namespace) -> int:
    from devstack import kind

    def work() -> int:
        if args.action == "tools":
            from devstack.settings import default_paths

            parts = tuple(args.parts) or tuple(kind.TOOL_PARTS)
            unknown = set(parts) - set(kind.TOOL_PARTS)
            if unknown:
                print(
                    f"srs kind: unknown tools {sorted(unknown)}; choose from {list(kind.TOOL_PARTS)}", file=sys.stderr
                )
                return 2
            print(kind.ensure_tools(default_paths(), parts))
        elif args.action == "up":
            kind.up(llm=args.llm, with_keda=not args.no_keda, brokers=args.brokers)
        elif args.action == "down":
            kind.down()
        else:
            return 0 if kind.status() else 1
        return 0

    return _reporting("srs kind", work)


def _image(args: argparse.Namespace) -> int:
    from devstack import docker_engine, images, kind, settings

    def say(msg: str) -> None:
        print(f"srs image: {msg}", file=sys.stderr, flush=True)

    def work() -> int:
        paths = settings.default_paths()
        docker_engine.ensure_engine(paths.cache, settings.kind_state() / "logs", say)
        images.build_srs_image(args.tag or kind.srs_image_tag(), args.base or None, say)
        return 0

    return _reporting("srs image", work)


def register(sub: Any) -> None:
    """Add ``srs kind`` and ``srs image`` to the ``srs`` parser's subcommands."""
    kind = sub.add_parser(
        "kind",
        help="the cluster path: a kind cluster with Kafka and the operator, every image built locally",
        description=__doc__,
    )
    kind.add_argument(
        "action",
        choices=["up", "down", "status", "tools"],
        help="up: create or update (idempotent); down: remove the cluster, its containers and network; "
        "status: node, Kafka, KEDA and operator readiness; tools [PART...]: build the Go tools (kind, node, "
        "coredns, actionlint, own) and print the folder that holds them",
    )
    kind.add_argument("parts", nargs="*", help=argparse.SUPPRESS)
    kind.add_argument(
        "--llm", action="store_true",
        help="with up: also run a real model server in the cluster (llama.cpp's server with Gemma 3 270M, namespace "
        "srs-llm, http://llm.srs-llm.svc:8080/v1 from pods; the binary and model of `srs llm up`, cached)",
    )  # fmt: skip
    kind.add_argument(
        "--no-keda", action="store_true",
        help="with up: do not install KEDA (operator, metrics API server, admission webhooks in namespace keda, "
        "built from its Go module on first use, ~13 CPU-min); an installed KEDA is left alone",
    )  # fmt: skip
    kind.add_argument(
        "--brokers", type=int, choices=[1, 3], default=None,
        help="with up: how many Kafka brokers a new cluster gets (default 3: a KRaft quorum of three, replication 3 "
        "and min.insync.replicas 2, TLS and SASL/SCRAM with ACLs on every client listener, the operator managing each "
        "agent's user; 1: one plaintext broker); a cluster keeps its count (`srs kind down` first to change it)",
    )  # fmt: skip
    kind.set_defaults(func=_kind)

    image = sub.add_parser(
        "image",
        help="build the srs container image (operator and agents) from the Dockerfile",
        description=(
            "Build wheels of srs and its dependencies on the host (build/wheels), then the Dockerfile "
            "with them: no network inside the build. Without --base the base image is Debian's Python "
            "built here with mmdebstrap (no registry needed); pass --base python:3.11-slim where a "
            "registry is at hand."
        ),
    )
    image.add_argument("--tag", default="", help="image name (default srs:<version>)")
    image.add_argument("--base", default="", help="BASE_IMAGE for the Dockerfile (default: a Debian base built here)")
    image.set_defaults(func=_image)
