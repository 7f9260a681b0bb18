"""The cluster path: a kind cluster whose node, images and Kafka are all built here.

``up`` builds what is missing (Docker engine, kind and the Kubernetes node binaries, the
node image, the srs, Kafka and KEDA images), creates the cluster, runs Kafka in it (reachable
from pods as ``kafka-bootstrap.kafka.svc:9092`` and from the host on a loopback port per
broker; three brokers with TLS and SCRAM by default, or one plaintext broker:
:mod:`devstack.kind_kafka`), installs KEDA from its own manifests (``devstack/keda.py``;
``with_keda=False`` skips it), loads the srs image, installs the operator with the project's
Helm chart and writes ``.kind/env``. Everything runs on loopback or on the Docker network the cluster creates.
``down`` removes the cluster, its containers and that network.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import string
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import yaml

from devstack import docker_engine, images, kafka, kcat, keda, kind_kafka, kube, locks, settings
from devstack.gobuild import build_go_binary
from devstack.processes import free_port, wait_until
from devstack.settings import Paths, default_paths

CLUSTER = settings.KIND_CLUSTER
#: kind's Docker network for this cluster (KIND_EXPERIMENTAL_DOCKER_NETWORK): its own,
#: so that `down` can remove it without touching anyone else's "kind" network.
NETWORK = f"{CLUSTER}-kind"
KAFKA_NODE_PORT = kind_kafka.FIRST_NODE_PORT
OPERATOR_RELEASE = "srs-operator"
OPERATOR_NAMESPACE = "srs-system"
KAFKA_BOOTSTRAP_IN_CLUSTER = kind_kafka.BOOTSTRAP_IN_CLUSTER
#: The namespace of the example flow (the kind suite's and the demo's): with TLS and SCRAM the
#: operator may write agents' Kafka credential Secrets there (other namespaces: a RoleBinding).
FLOW_NAMESPACES = ("default",)
#: The model server of ``up(llm=True)``: its OpenAI-compatible API, as pods reach it.
LLM_NAMESPACE = "srs-llm"
LLM_BASE_URL_IN_CLUSTER = f"http://llm.{LLM_NAMESPACE}.svc:8080/v1"
#: Decoding slots and threads of the in-cluster server (the node shares 2 cores with everything).
LLM_PARALLEL = 2
LLM_THREADS = 1
BUILD_SCRIPT = Path(__file__).parent / "scripts" / "build-kind-binaries.sh"
#: Parts of build-kind-binaries.sh and the binaries each one makes.
TOOL_PARTS = {
    "own": ("srs-runc", "pause"),
    "kind": ("kind",),
    "actionlint": ("actionlint",),
    "node": ("kubelet", "kubeadm", "kube-proxy"),
    "coredns": ("coredns",),
}


def _say(msg: str) -> None:
    print(f"srs kind: {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class KindState:
    """What ``up`` made, kept in ``.kind/state.json``."""

    cluster: str
    kubeconfig: str
    kafka_bootstrap: str
    kafka_host_port: int
    image: str
    bin_dirs: list[str]
    #: Image name -> Docker image id last loaded into the node (a second `up` skips them).
    loaded: dict[str, str] = field(default_factory=dict)
    #: The model server's base URL for pods (``up(llm=True)``), None without one.
    llm_base_url: str | None = None
    #: True once KEDA is installed (``up`` without ``with_keda=False``).
    keda_installed: bool = False
    #: The Docker id of the cluster's node container: tells this cluster from one of the
    #: same name made since (by another checkout, or after a `kind delete`).
    node_id: str | None = None
    #: How many Kafka brokers run (1: plaintext; 3: TLS and SCRAM, devstack.kind_kafka).
    kafka_brokers: int = 1
    #: The loopback ports kind maps to the brokers' node ports (reserved for three).
    kafka_host_ports: list[int] = field(default_factory=list)
    #: The librdkafka properties file of the host's Kafka client (KAFKA_CLIENT_CONFIG).
    kafka_client_config: str | None = None

    def kafka_settings(self) -> dict[str, str]:
        """librdkafka settings of a host client: the admin over SASL_SSL with three brokers,
        plain bootstrap servers with one."""
        if self.kafka_client_config:
            return kind_kafka.client_settings(Path(self.kafka_client_config))
        return {"bootstrap.servers": self.kafka_bootstrap}

    @classmethod
    def load(cls, state_dir: Path) -> KindState | None:
        try:
            return cls(**json.loads((state_dir / "state.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None


def srs_image_tag() -> str:
    from importlib.metadata import version

    return f"srs:{version('srs')}"


def ensure_tools(paths: Paths, parts: tuple[str, ...] = tuple(TOOL_PARTS)) -> Path:
    """Build the named parts (kind, the node's kubelet/kubeadm/kube-proxy, CoreDNS, actionlint,
    srs-runc and pause) from Go sources into the cache, first run only; returns the folder."""
    out = settings.kind_bins(paths)
    if "own" in parts:
        _ensure_own_programs(paths, out)
    missing = [part for part in parts if part != "own" and not all((out / b).is_file() for b in TOOL_PARTS[part])]
    if not missing:
        return out
    if shutil.which("go") is None:
        raise docker_engine.EngineUnavailable("missing Go 1.24+ (https://go.dev/doc/install) to build kind's tools")
    for part in missing:
        names = ", ".join(TOOL_PARTS[part])
        with locks.exclusive(paths.cache, f"{out.name}-{part}", names, _say):
            if all((out / b).is_file() for b in TOOL_PARTS[part]):
                continue  # another srs process built it while this one waited
            _say(f"building {names} from Go sources into {out} (first run only; the node binaries take ~10 min)")
            subprocess.run(
                ["bash", str(BUILD_SCRIPT), str(out), settings.KUBERNETES_VERSION, settings.KIND_VERSION,
                 settings.COREDNS_VERSION, settings.ACTIONLINT_VERSION, part],
                check=True,
            )  # fmt: skip
    return out


#: The project's own small programs in the node: source folder under devstack/containers → binary.
OWN_PROGRAMS = {"ociwrapper": "srs-runc", "pause": "pause"}


def _ensure_own_programs(paths: Paths, out: Path) -> None:
    """srs-runc and pause, built once per content of their sources (an edit of
    ``devstack/containers/ociwrapper`` builds a new srs-runc on the next ``up``) and put into
    ``out`` beside the node's other binaries; the node image's digest covers them."""
    for folder, name in OWN_PROGRAMS.items():
        built = build_go_binary(
            images.CONTAINERS / folder, paths.cache, name, what=name, error=docker_engine.EngineUnavailable
        )
        placed = out / name
        if placed.is_file() and placed.read_bytes() == built.read_bytes():
            continue
        out.mkdir(parents=True, exist_ok=True)
        staging = out / f".{name}.new"
        shutil.copy2(built, staging)
        staging.replace(placed)


def _env_with_bins(*bins: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([*(str(b) for b in bins), env.get("PATH", "")])
    env["KIND_EXPERIMENTAL_DOCKER_NETWORK"] = NETWORK
    return env


def cluster_exists(env: dict[str, str]) -> bool:
    done = subprocess.run(["kind", "get", "clusters"], env=env, capture_output=True, text=True)
    return CLUSTER in done.stdout.split()


def _node_id() -> str | None:
    """The Docker id of the cluster's node container, None when there is none."""
    found = docker_engine.docker("inspect", "--format", "{{.Id}}", f"{CLUSTER}-control-plane", check=False).strip()
    return found or None


def _published_kafka_ports() -> list[int]:
    """The host ports the node container publishes the brokers' node ports on, in broker
    order, as far as they go (empty: none published)."""
    published = []
    for node_port in kind_kafka.node_ports(max(kind_kafka.BROKER_COUNTS)):
        out = docker_engine.docker("port", f"{CLUSTER}-control-plane", f"{node_port}/tcp", check=False)
        found = [
            int(port)
            for host, _, port in (line.strip().rpartition(":") for line in out.splitlines())
            if host == "127.0.0.1" and port.isdigit()
        ]
        if not found:
            break
        published.append(found[0])
    return published


def cluster_config(node_image: str, kafka_host_ports: list[int], local_node: bool = True) -> str:
    """kind's cluster config; for the node image built here, kubeadm is pointed at its preloaded
    images and kube-proxy runs in nftables mode (its image carries only `nft`)."""
    config = f"""\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: {CLUSTER}
networking:
  apiServerAddress: 127.0.0.1
  kubeProxyMode: {"nftables" if local_node else "iptables"}
nodes:
  - role: control-plane
    image: {node_image}
    extraPortMappings:
      # The brokers' EXTERNAL listeners, for clients on the host (one port per broker, for
      # the largest count: kind fixes the mappings when it creates the cluster).
""" + "".join(
        f"      - {{containerPort: {node_port}, hostPort: {host_port}, listenAddress: 127.0.0.1}}\n"
        for node_port, host_port in zip(kind_kafka.node_ports(len(kafka_host_ports)), kafka_host_ports, strict=True)
    )
    if not local_node:
        return config
    return (
        config
        + f"""\
kubeadmConfigPatches:
  - |
    kind: ClusterConfiguration
    imageRepository: {images.NODE_IMAGE_REPOSITORY}
    etcd:
      local:
        imageTag: {settings.ETCD_VERSION}
    dns:
      imageTag: {settings.COREDNS_VERSION}
"""
    )


def _kubectl(env: dict[str, str], kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        env=env, input=stdin, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _deploy_kafka(
    env: dict[str, str], kubeconfig: Path, brokers: int, host_ports: list[int], client: dict[str, str]
) -> None:
    """Apply Kafka's manifest and wait until every broker is in the metadata a host client
    (``client``: its settings) gets through kind's port mappings."""
    manifest = kind_kafka.manifest(brokers, host_ports, images.source_label(images.KAFKA_IMAGE))
    _kubectl(env, kubeconfig, "apply", "-f", "-", stdin=manifest)
    _kubectl(env, kubeconfig, "-n", "kafka", "rollout", "status", "statefulset/kafka", "--timeout=240s")
    from confluent_kafka.admin import AdminClient

    def answers() -> bool:
        admin = AdminClient({**client, "log_level": 0})
        return len(admin.list_topics(timeout=3).brokers) == brokers

    # From the host, through kind's port mapping and the NodePort: the path host clients take.
    bootstrap = client["bootstrap.servers"]
    try:
        wait_until(f"{brokers} Kafka broker(s) on {bootstrap}", answers, timeout=120)
    except TimeoutError as e:
        raise TimeoutError(f"{e}\n{_kafka_diagnosis(env, kubeconfig)}") from None


def _kafka_diagnosis(env: dict[str, str], kubeconfig: Path) -> str:
    """What a person needs when Kafka in the cluster does not answer from the host: the
    pod's state, the Service's ports, the node's port mapping and the broker's last lines."""
    parts = []
    for what, argv in (
        ("pods", ["-n", "kafka", "get", "pods", "-o", "wide"]),
        ("services", ["-n", "kafka", "get", "services"]),
        ("broker log", ["-n", "kafka", "logs", "kafka-0", "--tail=20"]),
        ("another broker's log", ["-n", "kafka", "logs", "kafka-1", "--tail=10"]),
    ):
        try:
            parts.append(f"{what}:\n{_kubectl(env, kubeconfig, *argv).rstrip()}")
        except RuntimeError as e:
            parts.append(f"{what}: {e}")
    mapping = docker_engine.docker("port", f"{CLUSTER}-control-plane", check=False).strip()
    parts.append(f"node port mappings:\n{mapping or '(none)'}")
    return "\n".join(parts)


def _install_operator(env: dict[str, str], kubeconfig: Path, image: str, kafka_values: list[str]) -> None:
    repository, tag = image.rsplit(":", 1)
    # The image's source digest on the pod template: a rebuilt image (same tag) rolls the operator.
    digest = images.source_label(image)
    chart = images.PROJECT_ROOT / "charts" / "srs-operator"
    subprocess.run(
        [
            "helm", "upgrade", "--install", OPERATOR_RELEASE, str(chart),
            "--kubeconfig", str(kubeconfig), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never",
            *kafka_values,
            "--set", "replicaCount=1",
            "--set-string", f"podAnnotations.srs\\.dev/image-digest={digest or 'none'}",
            "--wait", "--timeout", "180s",
        ],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _apply_keda(env: dict[str, str], kubeconfig: Path, keda_images: dict[str, str]) -> None:
    """Apply upstream's manifests with the images built here; :func:`_wait_for_keda` waits."""
    rendered = _kubectl(env, kubeconfig, "kustomize", str(keda.module_dir() / "config" / "default"))
    digests = {image: images.source_label(image) for image in keda_images.values()}
    docs = keda.manifests((d for d in yaml.safe_load_all(rendered) if d), keda_images, digests)
    # Server-side: the CRDs are too large for the last-applied annotation of a client-side apply,
    # and the caBundle fields the operator writes stay the operator's.
    _kubectl(
        env, kubeconfig, "apply", "--server-side", "--field-manager=srs-kind", "--force-conflicts", "-f", "-",
        stdin=yaml.safe_dump_all(docs, sort_keys=False),
    )  # fmt: skip


def _wait_for_keda(env: dict[str, str], kubeconfig: Path) -> None:
    """Until KEDA's three Deployments are Available, the APIService answers and every admission
    webhook carries the CA: the metrics server and the webhooks start once the operator has
    written its certificates (Secret ``kedaorg-certs``), the APIService turns Available once
    the CA is in it and the server answers. The webhooks fail open (upstream's
    ``failurePolicy: Ignore``), so without their CA an invalid ScaledObject would be admitted."""
    for deployment in keda.DEPLOYMENTS:
        _kubectl(
            env, kubeconfig, "-n", keda.NAMESPACE, "rollout", "status", f"deployment/{deployment}", "--timeout=240s"
        )
    _kubectl(env, kubeconfig, "wait", "--for=condition=Available", f"apiservice/{keda.API_SERVICE}", "--timeout=120s")

    def webhooks_have_the_ca() -> bool:
        config = json.loads(
            _kubectl(env, kubeconfig, "get", f"validatingwebhookconfiguration/{keda.WEBHOOKS}", "-o", "json")
        )
        return all(w["clientConfig"].get("caBundle") for w in config["webhooks"])

    wait_until(f"the CA in ValidatingWebhookConfiguration {keda.WEBHOOKS}", webhooks_have_the_ca, timeout=60)


def _deploy_llm(env: dict[str, str], kubeconfig: Path, server_image: str, model_image: str) -> None:
    from devstack import llm

    manifest = string.Template((images.CONTAINERS / "llm" / "llm.yaml").read_text()).substitute(
        SERVER_IMAGE=server_image, MODEL_IMAGE=model_image, MODEL_ALIAS=settings.LLM_MODEL_ALIAS,
        PARALLEL=LLM_PARALLEL, THREADS=LLM_THREADS, CTX_SIZE=llm.CONTEXT_PER_SLOT * LLM_PARALLEL,
        REPEAT_PENALTY=llm.REPEAT_PENALTY,
    )  # fmt: skip
    _kubectl(env, kubeconfig, "apply", "-f", "-", stdin=manifest)
    # Ready = the kubelet's probe of /health answered 200: the model is loaded.
    _kubectl(env, kubeconfig, "-n", LLM_NAMESPACE, "rollout", "status", "deployment/llm", "--timeout=240s")


@dataclass(frozen=True)
class Built:
    """What a cluster is made of, built on this machine (or named by the environment)."""

    control_plane_bins: Path
    node_bins: Path
    node_image: str
    #: True when the node image is a ready-made one (SRS_KIND_NODE_IMAGE), not built here.
    upstream_node: bool
    kafka_image: str
    srs_image: str
    #: The model server's two images (server, model), when it is wanted.
    llm_images: tuple[str, ...]
    #: KEDA's images (binary name -> image), when it is wanted.
    keda_images: dict[str, str]

    @property
    def images(self) -> tuple[str, ...]:
        """Every image a cluster node loads."""
        return (self.kafka_image, self.srs_image, *self.llm_images, *self.keda_images.values())


def build(paths: Paths, logs: Path, *, llm: bool, with_keda: bool = True) -> Built:
    """Build every binary and image the cluster needs that is missing: the Docker engine
    first, then (one process at a time across srs processes) the images."""
    docker_engine.ensure_engine(paths.cache, logs, _say)
    with locks.exclusive(locks.MACHINE_LOCKS, "srs-kind-images", "the kind images", _say):
        return _build_images(paths, llm=llm, with_keda=with_keda)


def _build_images(paths: Paths, *, llm: bool, with_keda: bool) -> Built:
    # The Debian bases first, side by side (network and dpkg bound), then the Go builds.
    bases = [images.PYTHON_BASE] if not os.environ.get("BASE_IMAGE") else []
    bases += [images.JRE_BASE] if not os.environ.get("SRS_JRE_BASE") else []
    bases += [images.NFT_BASE, images.NODE_BASE] if not os.environ.get("SRS_KIND_NODE_IMAGE") else []
    bases += [images.LLM_BASE] if llm else []
    bases += [images.PYTHON_BASE] if with_keda and images.PYTHON_BASE not in bases else []  # KEDA's CA bundle
    images.ensure_rootfs_all(bases, _say)
    control_plane_bins = kube.ensure_binaries(paths, _say)
    # SRS_KIND_NODE_IMAGE: a ready-made node image (e.g. kind's own, where a registry is at
    # hand, as in the GitHub workflow); otherwise the node image is built here.
    upstream_node = os.environ.get("SRS_KIND_NODE_IMAGE")
    if upstream_node:
        node_bins = ensure_tools(paths, ("own", "kind"))
        node_image = upstream_node
    else:
        node_bins = ensure_tools(paths)
        node_image = images.ensure_node_image(control_plane_bins, node_bins, _say)
    libs = kafka.ensure_jars(paths, _say)
    kafka_image = images.build_kafka_image(libs, _say, os.environ.get("SRS_JRE_BASE") or None)
    image = srs_image_tag()
    images.ensure_srs_image(image, os.environ.get("BASE_IMAGE") or None, _say)
    llm_images: tuple[str, ...] = ()
    if llm:
        from devstack import llm as local_llm

        llm_images = images.build_llm_images(
            local_llm.ensure_server(paths, _say), local_llm.ensure_model(paths, _say), local_llm.CHAT_TEMPLATE, _say
        )
    keda_images = images.build_keda_images(keda.ensure_binaries(paths, _say), _say) if with_keda else {}
    return Built(
        control_plane_bins, node_bins, node_image, bool(upstream_node), kafka_image, image, llm_images, keda_images
    )


def up(
    paths: Paths | None = None,
    state_dir: Path | None = None,
    *,
    llm: bool = False,
    with_keda: bool = True,
    brokers: int | None = None,
) -> KindState:
    """Build what is missing, create the cluster and install Kafka, KEDA (unless ``with_keda``
    is False) and the operator; with ``llm``, also a real model server (llama.cpp's, Gemma 3
    270M) in ``srs-llm``. Idempotent: a later ``up`` without ``llm`` (or with ``with_keda``
    False) leaves a running model server (or KEDA) alone. ``brokers``: how many Kafka brokers
    a new cluster gets (default three, with TLS and SCRAM); a cluster keeps its count."""
    if brokers is not None and brokers not in kind_kafka.BROKER_COUNTS:
        counts = ", ".join(map(str, kind_kafka.BROKER_COUNTS))
        raise ValueError(f"--brokers must be one of {counts}, not {brokers}")
    paths = paths or default_paths()
    state_dir = state_dir or settings.kind_state()
    t0 = time.monotonic()
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    built = build(paths, logs, llm=llm, with_keda=with_keda)
    _say(f"images ready ({time.monotonic() - t0:.0f}s)")
    node_bins, control_plane_bins, image = built.node_bins, built.control_plane_bins, built.srs_image

    env = _env_with_bins(node_bins, control_plane_bins)
    kubeconfig = state_dir / "kubeconfig"
    previous = KindState.load(state_dir)
    loaded: dict[str, str] = {}
    llm_base_url: str | None = None
    keda_installed = False
    node_id = _node_id() if cluster_exists(env) else None
    adopted_ports = _published_kafka_ports() if node_id is not None else []
    existing_brokers: int | None = None
    if node_id is not None and previous is not None and previous.node_id == node_id:
        host_ports = previous.kafka_host_ports or [previous.kafka_host_port]
        existing_brokers = previous.kafka_brokers
        loaded = dict(previous.loaded)
        llm_base_url = previous.llm_base_url  # a model server deployed before keeps running
        keda_installed = previous.keda_installed  # so does KEDA
        _say(f"cluster {CLUSTER} exists; bringing it up to date")
    elif node_id is not None and adopted_ports:
        # A cluster this folder's state does not describe (another checkout made it, or it
        # was recreated since): its own published ports, every image loaded again.
        host_ports = adopted_ports
        _export_kubeconfig(env, kubeconfig)
        existing_brokers = kind_kafka.deployed_brokers(functools.partial(_kubectl, env, kubeconfig))
        _say(f"cluster {CLUSTER} exists but was not made from this folder; adopting it and bringing it up to date")
    else:
        if cluster_exists(env):
            subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], env=env, check=True, capture_output=True)
        host_ports = _free_ports(max(kind_kafka.BROKER_COUNTS))
        config = state_dir / "cluster.yaml"
        config.write_text(cluster_config(built.node_image, host_ports, local_node=not built.upstream_node))
        _say(f"creating kind cluster {CLUSTER} (node image {built.node_image})")
        subprocess.run(
            ["kind", "create", "cluster", "--config", str(config), "--kubeconfig", str(kubeconfig), "--wait", "120s"],
            env=env, check=True,
        )  # fmt: skip
        node_id = _node_id()
    _export_kubeconfig(env, kubeconfig)
    count = _broker_count(existing_brokers, brokers, len(host_ports))
    for name in built.images:
        image_id = docker_engine.docker("image", "inspect", "--format", "{{.Id}}", name).strip()
        if loaded.get(name) == image_id:
            continue
        _say(f"loading {name} into the node")
        subprocess.run(
            ["kind", "load", "docker-image", "--name", CLUSTER, name], env=env, check=True, capture_output=True
        )
        loaded[name] = image_id
    # One node, one DNS server: the second replica kubeadm makes holds 100m of the node's
    # 2 CPUs of requests, which the agents (and the model server) need more.
    _kubectl(env, kubeconfig, "-n", "kube-system", "scale", "deployment/coredns", "--replicas=1")
    t_keda = time.monotonic()
    if built.keda_images:
        # Applied first, waited for after Kafka: the two start side by side. Before the
        # operator, which finds KEDA's CRDs served when it starts.
        _say(f"installing KEDA {settings.KEDA_VERSION} in namespace {keda.NAMESPACE} (upstream's manifests)")
        _apply_keda(env, kubeconfig, built.keda_images)

    def kubectl(*args: str, stdin: str | None = None) -> str:
        return _kubectl(env, kubeconfig, *args, stdin=stdin)

    secure = kind_kafka.secure(count)
    auth = kind_kafka.ensure_auth(kubectl, state_dir) if secure else None
    bootstrap = kind_kafka.host_bootstrap(host_ports, count)
    client_config = kind_kafka.write_client_config(kind_kafka.auth_folder(state_dir), bootstrap, auth)
    what = "with TLS and SCRAM-SHA-512, ACLs enforced" if secure else "plaintext"
    _say(f"starting Kafka in the cluster: {count} broker(s), {what}")
    _deploy_kafka(env, kubeconfig, count, host_ports, kind_kafka.client_settings(client_config))
    if built.keda_images:
        _wait_for_keda(env, kubeconfig)
        keda_installed = True
        _say(f"KEDA ready: operator, metrics API server, admission webhooks ({time.monotonic() - t_keda:.0f}s)")
    _say(f"installing the operator with Helm (release {OPERATOR_RELEASE} in {OPERATOR_NAMESPACE})")
    if auth is not None:
        kind_kafka.apply_operator_secrets(kubectl, OPERATOR_NAMESPACE, auth)
    _install_operator(env, kubeconfig, image, kind_kafka.helm_values(auth, FLOW_NAMESPACES))
    if built.llm_images:
        _say(f"starting the model server in {LLM_NAMESPACE} ({settings.LLM_MODEL_ALIAS}, {LLM_PARALLEL} slots)")
        _deploy_llm(env, kubeconfig, *built.llm_images)
        llm_base_url = LLM_BASE_URL_IN_CLUSTER

    state = KindState(
        cluster=CLUSTER,
        kubeconfig=str(kubeconfig),
        kafka_bootstrap=bootstrap,
        kafka_host_port=host_ports[0],
        image=image,
        bin_dirs=[str(node_bins), str(control_plane_bins)],
        loaded=loaded,
        llm_base_url=llm_base_url,
        keda_installed=keda_installed,
        node_id=node_id,
        kafka_brokers=count,
        kafka_host_ports=host_ports,
        kafka_client_config=str(client_config),
    )
    # kcat as the local stack has it: Debian's on a librdkafka that logs in with SCRAM.
    kcat_dir = kcat.bin_dir(replace(paths, state=state_dir))
    kcat.write_wrapper(replace(paths, state=state_dir))
    (state_dir / "state.json").write_text(json.dumps(asdict(state), indent=2))
    (state_dir / "env").write_text(
        "# Written by `srs kind up`; source it to talk to the kind cluster.\n"
        f"export KUBECONFIG={kubeconfig}\n"
        f"export KAFKA_BOOTSTRAP_SERVERS={state.kafka_bootstrap}\n"
        # The host's Kafka client settings (with three brokers: the admin over SASL_SSL), for
        # clients srs did not write: kcat -F "$KAFKA_CLIENT_CONFIG" -L
        f"export KAFKA_CLIENT_CONFIG={client_config}\n"
        + (f"export SRS_KAFKA_CA_FILE={auth.ca_file}\n" if auth is not None else "")
        + f"export KIND_EXPERIMENTAL_DOCKER_NETWORK={NETWORK}\n"
        f'export PATH="{kcat_dir}:{node_bins}:{control_plane_bins}:$PATH"\n'
        # The model server's URL as pods reach it (baseURL of an agent's model).
         + (f"export SRS_LLM_BASE_URL_IN_CLUSTER={llm_base_url}\n" if llm_base_url else "")
    )
    _say(f"up in {time.monotonic() - t0:.0f}s; run: source {state_dir / 'env'}")
    return state


def _export_kubeconfig(env: dict[str, str], kubeconfig: Path) -> None:
    subprocess.run(
        ["kind", "export", "kubeconfig", "--name", CLUSTER, "--kubeconfig", str(kubeconfig)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class BrokerCountError(RuntimeError):
    """The broker count asked for is not one this cluster can have: `srs kind down` first."""


def _broker_count(existing: int | None, requested: int | None, mapped_ports: int) -> int:
    """The cluster's number of brokers: what it runs (kept), else what was asked for (three by
    default), within the host ports the cluster was created with."""
    if existing is not None:
        if requested is not None and requested != existing:
            raise BrokerCountError(
                f"the kind cluster {CLUSTER} runs {existing} Kafka broker(s) and keeps them (the topics are theirs); "
                f"for {requested}: `srs kind down && srs kind up --brokers {requested}`, or `srs kind up` without "
                "--brokers to keep this one"
            )
        return existing
    count = requested or kind_kafka.DEFAULT_BROKERS
    if count > mapped_ports:
        raise BrokerCountError(
            f"the kind cluster {CLUSTER} was created with {mapped_ports} Kafka host port(s) (by an srs before "
            f"--brokers), too few for {count} brokers: `srs kind down && srs kind up --brokers {count}`, or "
            "`srs kind up --brokers 1`"
        )
    return count


def down(paths: Paths | None = None, state_dir: Path | None = None) -> None:
    """Delete the cluster, its containers and its Docker network. Idempotent."""
    paths = paths or default_paths()
    state_dir = state_dir or settings.kind_state()
    bins = settings.kind_bins(paths)
    if docker_engine.answers() and (bins / "kind").is_file():
        env = _env_with_bins(bins)
        if cluster_exists(env):
            _say(f"deleting kind cluster {CLUSTER}")
            subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], env=env, check=True, capture_output=True)
        if docker_engine.docker("network", "ls", "--quiet", "--filter", f"name=^{NETWORK}$").strip():
            docker_engine.docker("network", "rm", NETWORK)
    for leftover in ("state.json", "env", "kubeconfig", "cluster.yaml"):
        (state_dir / leftover).unlink(missing_ok=True)
    shutil.rmtree(kind_kafka.auth_folder(state_dir), ignore_errors=True)
    _say("down")


def _keda_ready(env: dict[str, str], kubeconfig: Path) -> bool:
    """KEDA's three Deployments Available and its external metrics APIService Available."""

    def available(obj: dict[str, Any]) -> bool:
        return any(c["type"] == "Available" and c["status"] == "True" for c in obj["status"].get("conditions", []))

    names = [f"deployment/{d}" for d in keda.DEPLOYMENTS]
    try:
        deployments = json.loads(_kubectl(env, kubeconfig, "-n", keda.NAMESPACE, "get", *names, "-o", "json"))["items"]
        api_service = json.loads(_kubectl(env, kubeconfig, "get", f"apiservice/{keda.API_SERVICE}", "-o", "json"))
    except RuntimeError:  # deleted by hand: not ready
        return False
    return len(deployments) == len(names) and all(available(d) for d in [*deployments, api_service])


def status(paths: Paths | None = None, state_dir: Path | None = None, out: TextIO | None = None) -> bool:
    """Print the cluster's node, Kafka and operator; True when all are ready."""
    paths = paths or default_paths()
    state_dir = state_dir or settings.kind_state()
    out = out or sys.stdout
    state = KindState.load(state_dir)
    if state is None or not docker_engine.answers():
        print("kind cluster: not running (start it with `srs kind up`)", file=out)
        return False
    env = _env_with_bins(*(Path(b) for b in state.bin_dirs))
    if not cluster_exists(env):
        print(f"kind cluster {CLUSTER}: gone (state in {state_dir}); run `srs kind up`", file=out)
        return False
    kubeconfig = Path(state.kubeconfig)
    checks: list[tuple[str, Any]] = []
    try:
        nodes = json.loads(_kubectl(env, kubeconfig, "get", "nodes", "-o", "json"))["items"]
        node_ready = all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
            for n in nodes
        )
        checks.append(("node", node_ready))
        for what, ns, kind_name, wanted in (
            ("kafka", "kafka", "statefulset/kafka", state.kafka_brokers),
            ("operator", OPERATOR_NAMESPACE, f"deployment/{OPERATOR_RELEASE}", 1),
        ):
            obj = json.loads(_kubectl(env, kubeconfig, "-n", ns, "get", kind_name, "-o", "json"))
            checks.append((what, obj["status"].get("readyReplicas", 0) >= wanted))
        if state.llm_base_url:
            obj = json.loads(_kubectl(env, kubeconfig, "-n", LLM_NAMESPACE, "get", "deployment/llm", "-o", "json"))
            checks.append(("llm", obj["status"].get("readyReplicas", 0) >= 1))
        if state.keda_installed:
            checks.append(("keda", _keda_ready(env, kubeconfig)))
    except RuntimeError as e:
        print(f"kind cluster {CLUSTER}: API not answering ({e})", file=out)
        return False
    for what, ok in checks:
        print(f"{what:<10} {'ready' if ok else 'NOT READY'}", file=out)
    if state.keda_installed:
        print(f"keda: {settings.KEDA_VERSION} in namespace {keda.NAMESPACE} ({', '.join(keda.DEPLOYMENTS)})", file=out)
    security = "TLS + SCRAM, ACLs" if kind_kafka.secure(state.kafka_brokers) else "plaintext"
    print(f"kafka: {state.kafka_brokers} broker(s), {security}", file=out)
    print(f"\nKUBECONFIG={state.kubeconfig}\nKAFKA_BOOTSTRAP_SERVERS={state.kafka_bootstrap}", file=out)
    if state.kafka_client_config:
        print(f"KAFKA_CLIENT_CONFIG={state.kafka_client_config}", file=out)
    print(f"image: {state.image}\nenv file: {state_dir / 'env'}", file=out)
    if state.llm_base_url:
        print(f"model server (from pods): {state.llm_base_url}", file=out)
    return all(ok for _, ok in checks)
