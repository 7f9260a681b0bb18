"""A Kubernetes control plane from Go sources: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, and kwok managing one fake node."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from devstack import locks, pki, settings
from devstack.processes import ProcessRecord, spawn, wait_until
from devstack.settings import Paths

BUILD_SCRIPT = Path(__file__).parent / "scripts" / "build-go-binaries.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "helm")
CONTROLLERS = ",".join(
    [
        "deployment-controller",
        "replicaset-controller",
        "garbage-collector-controller",
        "namespace-controller",
        "serviceaccount-controller",
        "serviceaccount-token-controller",
        "node-lifecycle-controller",
        "root-ca-certificate-publisher-controller",
        "disruption-controller",
        # Quotas are enforced once this controller has counted a namespace's objects.
        "resourcequota-controller",
        # Judges the HorizontalPodAutoscalers KEDA would make (the operator reports their word).
        "horizontal-pod-autoscaler-controller",
    ]
)


def ensure_binaries(paths: Paths, progress: Callable[[str], None]) -> Path:
    """Build the Go binaries into the cache when any is missing (first run only)."""
    out = paths.go_bins

    def built() -> bool:
        return all((out / b).is_file() for b in BINARIES) and (out / "kwok-stages.yaml").is_file()

    if built():
        return out
    with locks.exclusive(paths.cache, out.name, "the control plane's binaries", progress):
        if built():
            return out
        progress(
            f"building Kubernetes {settings.KUBERNETES_VERSION}, etcd {settings.ETCD_VERSION} and kwok "
            f"{settings.KWOK_VERSION}, helm {settings.HELM_VERSION} from Go sources into {out} "
            "(first run only, ~6-10 min on 2 cores)"
        )
        subprocess.run(
            ["bash", str(BUILD_SCRIPT), str(out), settings.KUBERNETES_VERSION, settings.ETCD_VERSION,
             settings.KWOK_VERSION, settings.HELM_VERSION],
            check=True,
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


@dataclass(frozen=True)
class Identity:
    """A static-token identity written into its own kubeconfig."""

    user: str
    token: str
    groups: tuple[str, ...]


def server_url(ports: Ports) -> str:
    return f"https://127.0.0.1:{ports.apiserver}"


def write_kubeconfig(path: Path, server: str, ca: Path, identity: Identity) -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "srs-dev", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": identity.user, "user": {"token": identity.token}}],
        "contexts": [{"name": "srs-dev", "context": {"cluster": "srs-dev", "user": identity.user}}],
        "current-context": "srs-dev",
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    path.chmod(0o600)


def prepare(paths: Paths, ports: Ports) -> Identity:
    """PKI, token file and both kubeconfigs; returns the admin identity.

    Kept when they exist (a restart in place keeps every client's credentials valid);
    written fresh otherwise (a new stack, or after ``srs dev reset``).
    """
    pki_dir = paths.state / "pki"
    server = server_url(ports)
    if (pki_dir / "tokens.csv").is_file() and paths.kubeconfig.is_file() and paths.user_kubeconfig.is_file():
        admin, user = (_identity(path) for path in (paths.kubeconfig, paths.user_kubeconfig))
        # Same credentials, but the server follows the ports of this start: a stack whose
        # state.json is gone (an older version's `down`) starts on new ports.
        write_kubeconfig(paths.kubeconfig, server, pki_dir / "ca.crt", admin)
        write_kubeconfig(paths.user_kubeconfig, server, pki_dir / "ca.crt", user)
        return admin
    if pki_dir.exists():
        shutil.rmtree(pki_dir)
    pki.write_pki(pki_dir)
    admin = Identity("srs-admin", pki.new_token(), ("system:masters",))
    user = Identity(settings.USER_NAME, pki.new_token(), ("srs:developers",))
    (pki_dir / "tokens.csv").write_text(
        "".join(f'{i.token},{i.user},{i.user},"{",".join(i.groups)}"\n' for i in (admin, user))
    )
    (pki_dir / "tokens.csv").chmod(0o600)
    write_kubeconfig(paths.kubeconfig, server, pki_dir / "ca.crt", admin)
    write_kubeconfig(paths.user_kubeconfig, server, pki_dir / "ca.crt", user)
    return admin


def _identity(kubeconfig: Path) -> Identity:
    """The identity a kubeconfig written by :func:`write_kubeconfig` carries."""
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]
    groups = ("system:masters",) if user["name"] != settings.USER_NAME else ("srs:developers",)
    return Identity(user["name"], user["user"]["token"], groups)


#: The control plane's processes, in start order.
COMPONENTS: Final = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def start(paths: Paths, bins: Path, ports: Ports) -> list[ProcessRecord]:
    """Start etcd and the control plane; returns their records in start order."""
    return [start_one(name, paths, bins, ports) for name in COMPONENTS]


def start_one(name: str, paths: Paths, bins: Path, ports: Ports) -> ProcessRecord:
    """Start one control-plane process on its ports; etcd keeps whatever data it has."""
    pki_dir = paths.state / "pki"
    etcd_data = paths.state / "etcd"
    logs = paths.logs
    kubeconfig = str(paths.kubeconfig)
    # Garbage collection was a fifth of the API server's CPU with a thousand agents starting
    # on two cores: every Go process of the stack collects at 4x its live heap, not 2x (the
    # API server then peaked at ~2.9 GB in operator_benchmark.py's 1,000-agent run).
    env = {**os.environ, "ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", ""), "GOGC": "400"}
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    argv: dict[str, list[str]] = {
        "etcd": [
            str(bins / "etcd"), f"--data-dir={etcd_data}", "--name=n0",
            f"--listen-client-urls=http://127.0.0.1:{ports.etcd}",
            f"--advertise-client-urls=http://127.0.0.1:{ports.etcd}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=n0={peer}", "--unsafe-no-fsync=true", "--log-level=warn",
        ],
        "kube-apiserver": [
            str(bins / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ports.etcd}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}", f"--cert-dir={pki_dir}",
            f"--tls-cert-file={pki_dir / 'apiserver.crt'}", f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
            f"--client-ca-file={pki_dir / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki_dir / 'sa.key'}",
            f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
            "--authorization-mode=RBAC", f"--token-auth-file={pki_dir / 'tokens.csv'}",
            "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
            "--profiling=false",
        ],
        "kube-controller-manager": [
            str(bins / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={ports.controller_manager}",
            "--leader-elect=false", f"--service-account-private-key-file={pki_dir / 'sa.key'}",
            f"--root-ca-file={pki_dir / 'ca.crt'}", f"--controllers={CONTROLLERS}",
            "--concurrent-deployment-syncs=20", "--concurrent-replicaset-syncs=20",
            # Its own rate limit, not the CPU, would pace a thousand Deployments (about fifteen
            # requests each: ReplicaSet, pod, status updates, Events) at 200 requests/s.
            "--kube-api-qps=1000", "--kube-api-burst=2000",
            # kwok marks a pod Ready only once: if a starved 2-core machine delays the
            # node's Lease renewal past the grace period, pods would stay NotReady for good.
            "--node-monitor-grace-period=180s",
        ],
        "kube-scheduler": [
            str(bins / "kube-scheduler"), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={ports.scheduler}",
            # Its default (50 requests/s: a binding and an Event per pod) would make the
            # scheduler, not the operator, the limit of a thousand agents starting at once.
            "--kube-api-qps=200", "--kube-api-burst=400",
        ],
        "kwok": [
            str(bins / "kwok"), f"--kubeconfig={kubeconfig}", "--manage-all-nodes=true",
            f"--config={bins / 'kwok-stages.yaml'}", f"--server-address=127.0.0.1:{ports.kwok}",
            "--cidr=10.244.0.1/16", "--node-ip=127.0.0.1",
            # Renew the node's Lease: without it the node-lifecycle controller marks
            # the node NotReady after its grace period and evicts every pod.
            "--node-lease-duration-seconds=40",
        ],
    }  # fmt: skip
    return spawn(name, argv[name], logs / f"{name}.log", env)


class Rest:
    """The few raw API calls the stack itself needs (readiness, the fake node)."""

    def __init__(self, server: str, ca: Path, token: str) -> None:
        self.server = server
        self.token = token
        self.ctx = ssl.create_default_context(cafile=str(ca))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=5) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")


def fake_node() -> dict[str, Any]:
    # Room for the operator benchmark's 1,000 agents at their default request (100m, 128Mi)
    # beside the demo and the tests: kwok runs no container, so capacity costs nothing.
    resources = {"cpu": "256", "memory": "1Ti", "pods": "2000", "ephemeral-storage": "4Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": settings.NODE_NAME,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": settings.NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
            },
        },
        "status": {"allocatable": resources, "capacity": resources},
    }


def wait_ready(paths: Paths, ports: Ports, admin: Identity, records: list[ProcessRecord]) -> None:
    """Wait for the apiserver, register the fake node, and wait until it is Ready."""
    by_name = {r.name: r for r in records}
    rest = Rest(server_url(ports), paths.state / "pki" / "ca.crt", admin.token)
    api = by_name["kube-apiserver"]
    wait_until("kube-apiserver", lambda: rest.request("GET", "/readyz")[0] == 200, 90, alive=api.is_alive, log=api.log)
    status, body = rest.request("POST", "/api/v1/nodes", fake_node())
    if status not in (201, 409):
        raise RuntimeError(f"could not register the fake node: HTTP {status}: {body}")

    def node_ready() -> bool:
        _, node = rest.request("GET", f"/api/v1/nodes/{settings.NODE_NAME}")
        conds = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    kwok = by_name["kwok"]
    wait_until("kwok fake node", node_ready, 60, alive=kwok.is_alive, log=kwok.log)
    # Namespaces need their "default" ServiceAccount before pods referencing it are useful.
    cm = by_name["kube-controller-manager"]
    wait_until(
        "kube-controller-manager",
        lambda: rest.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
        60,
        alive=cm.is_alive,
        log=cm.log,
    )
