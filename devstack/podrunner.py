"""A local stand-in for the kubelet, for the agents' pods on the kwok fake node.

kwok marks pods Running/Ready without running anything. On the local stack this runner
does the kubelet's job for srs agent pods: for every Ready pod on the fake node it starts
one process from the pod's first container (``srs agent --config …``) with the pod's
environment and its mounted ConfigMaps/Secrets resolved through the API, and it stops
the process when the pod goes away. On a real cluster the kubelet does this with the
project's image; nothing here is used there.

Each agent process it runs is listed for Prometheus in a ``file_sd`` target file
(``agent-<namespace>_<pod>.json`` in ``.devstack/observability/targets/``), removed when the
process stops: ``srs dev up --observability`` scrapes them.

Level-based: every ``interval`` seconds the runner lists the pods it should run and
diffs them against the processes it has (starting, stopping and restarting crashed ones
with backoff). It only reads from the API.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from devstack import observability, settings
from devstack.processes import ProcessRecord, free_port, start_time, stop

log = logging.getLogger("srs.podrunner")

#: Pods of SupportAgent Deployments carry this label (set by the operator's builders).
DEFAULT_SELECTOR = "app.kubernetes.io/managed-by=srs-operator"
TERMINATION_GRACE_SECONDS = 30
#: In each pod's work folder: the process standing in for the pod (pid + start time).
PROCESS_FILE = "process.json"
#: Prometheus target files of the agents (``file_sd``) start with this.
TARGET_PREFIX = "agent-"


@dataclass
class PodProcess:
    """One running process standing in for one pod."""

    namespace: str
    name: str
    uid: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    restarts: int = 0
    next_restart: float = 0.0
    grace: float = TERMINATION_GRACE_SECONDS
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _srs_executable() -> str:
    """The ``srs`` console script of this installation (the image's entrypoint)."""
    here = Path(sys.executable).parent / "srs"
    return str(here) if here.exists() else (shutil.which("srs") or "srs")


Pod = dict[str, Any]


def _is_ready(pod: Pod) -> bool:
    status = pod.get("status", {})
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def _json(response: Any) -> dict[str, Any]:
    """An API response read raw (``_preload_content=False``) as plain JSON: the typed
    models' Optionals buy nothing for the few fields read here."""
    return dict(json.loads(response.data))


def _key(pod: Pod) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


@dataclass
class PodRunner:
    """Runs a process for every Ready agent pod on the fake node."""

    api: client.CoreV1Api
    workroot: Path
    logdir: Path
    selector: str = DEFAULT_SELECTOR
    node_name: str = settings.NODE_NAME
    #: The environment every agent process starts from (default: this process's).
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    #: fnmatch patterns of namespaces whose pods are left alone.
    exclude_namespaces: Sequence[str] = ()
    #: Where each running agent is listed for Prometheus (``file_sd``), None: nowhere.
    targets_dir: Path | None = None
    processes: dict[str, PodProcess] = field(default_factory=dict, init=False)
    _ports: dict[Path, int | None] = field(default_factory=dict, init=False, repr=False)

    # -- the loop ---------------------------------------------------------------------

    def sync(self) -> None:
        """One level-based pass: make the processes match the Ready pods."""
        pods = _json(
            self.api.list_pod_for_all_namespaces(
                label_selector=self.selector, field_selector=f"spec.nodeName={self.node_name}", _preload_content=False
            )
        )["items"]
        wanted = {_key(p): p for p in pods if _is_ready(p) and not self._excluded(p["metadata"]["namespace"])}
        for key, running in list(self.processes.items()):
            pod = wanted.get(key)
            if pod is None or pod["metadata"]["uid"] != running.uid:
                self._stop(running, reason="pod gone" if pod is None else "pod replaced")
        for key, pod in wanted.items():
            existing = self.processes.get(key)
            if existing is None:
                self._start(pod)
            elif existing.proc.poll() is not None:
                self._restart_with_backoff(existing)

    def _excluded(self, namespace: str) -> bool:
        return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.exclude_namespaces)

    def run(self, interval: float = 1.0) -> None:
        """Sync until SIGTERM/SIGINT, then stop every process (gracefully)."""
        stopping = False

        def _stop(signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.stop_orphans()
        log.info("pod runner watching pods %r on node %s", self.selector, self.node_name)
        while not stopping:
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 - the API may blip; the next pass retries
                log.warning("sync failed, retrying: %s", e)
            time.sleep(interval)
        self.stop_all()

    def stop_orphans(self) -> None:
        """Stop agent processes that an earlier runner left behind (it was killed before it
        could stop them); this runner starts its own for the pods that are still Ready."""
        if self.targets_dir is not None:
            for stale in self.targets_dir.glob(f"{TARGET_PREFIX}*.json"):
                stale.unlink(missing_ok=True)
        for record_file in sorted(self.workroot.glob(f"*/{PROCESS_FILE}")):
            try:
                record = ProcessRecord.from_json(json.loads(record_file.read_text()))
            except (OSError, ValueError, KeyError):
                continue
            if record.is_alive():
                log.info("stopping %s (pid %d), left behind by an earlier pod runner", record.name, record.pid)
                stop(record, timeout=TERMINATION_GRACE_SECONDS)
            shutil.rmtree(record_file.parent, ignore_errors=True)

    def _remember(self, running: PodProcess) -> None:
        start = start_time(running.proc.pid)
        if start is not None:
            record = ProcessRecord(running.key, running.proc.pid, start, str(running.log_path))
            (running.workdir / PROCESS_FILE).write_text(json.dumps(record.to_json()))

    def stop_all(self) -> None:
        for running in list(self.processes.values()):
            self._stop(running, reason="runner stopping")

    # -- one pod ----------------------------------------------------------------------

    def _start(self, pod: Pod) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        workdir = self.workroot / f"{ns}_{name}"
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        try:
            argv, env = self._materialize(pod, workdir)
        except (client.ApiException, KeyError) as e:
            # A referenced ConfigMap/Secret is missing: the kubelet would report
            # CreateContainerConfigError and retry; so do we on the next pass.
            log.warning("pod %s/%s: cannot resolve its config yet (%s); will retry", ns, name, e)
            return
        self.logdir.mkdir(parents=True, exist_ok=True)
        log_path = self.logdir / f"{ns}_{name}.log"
        proc = self._spawn(argv, env, log_path)
        grace = float(pod["spec"].get("terminationGracePeriodSeconds") or TERMINATION_GRACE_SECONDS)
        uid = pod["metadata"]["uid"]
        running = PodProcess(
            ns, name, uid, proc, workdir, log_path, grace=grace, argv=argv, env=env,
            metrics_port=self._ports.pop(workdir, None),
        )  # fmt: skip
        self.processes[running.key] = running
        self._remember(running)
        self._list_target(running)
        log.info("started %s (pid %d): %s", running.key, proc.pid, " ".join(argv))

    @staticmethod
    def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as out:
            return subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _restart_with_backoff(self, running: PodProcess) -> None:
        now = time.monotonic()
        if running.next_restart == 0.0:
            # CrashLoopBackOff-like: 1 s, 2 s, 4 s … capped at 30 s.
            delay = min(30.0, 2.0**running.restarts)
            running.next_restart = now + delay
            log.warning(
                "%s exited with %s; restarting in %.0fs (see %s)",
                running.key, running.proc.returncode, delay, running.log_path,
            )  # fmt: skip
            return
        if now < running.next_restart:
            return
        running.proc = self._spawn(running.argv, running.env, running.log_path)
        self._remember(running)
        running.restarts += 1
        running.next_restart = 0.0
        log.info("restarted %s (pid %d, restart #%d)", running.key, running.proc.pid, running.restarts)

    def _stop(self, running: PodProcess, reason: str) -> None:
        proc = running.proc
        if proc.poll() is None:
            log.info("stopping %s (pid %d): %s", running.key, proc.pid, reason)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=running.grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.pop(running.key, None)
        shutil.rmtree(running.workdir, ignore_errors=True)
        if self.targets_dir is not None:
            (self.targets_dir / f"{TARGET_PREFIX}{running.namespace}_{running.name}.json").unlink(missing_ok=True)

    def _list_target(self, running: PodProcess) -> None:
        """List the agent's metrics port for Prometheus: ``agent-<namespace>_<pod>.json``."""
        if self.targets_dir is None or running.metrics_port is None:
            return
        observability.write_target(
            self.targets_dir, f"{TARGET_PREFIX}{running.namespace}_{running.name}",
            f"127.0.0.1:{running.metrics_port}", {"namespace": running.namespace, "pod": running.name},
        )  # fmt: skip

    # -- pod spec → argv/env/files ----------------------------------------------------

    def _materialize(self, pod: Pod, workdir: Path) -> tuple[list[str], dict[str, str]]:
        ns = pod["metadata"]["namespace"]
        container = pod["spec"]["containers"][0]
        mounts: dict[str, Path] = {}
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            files = self._volume_files(ns, volume) if volume is not None else None
            if files is None:
                continue  # emptyDir, projected tokens, …: nothing the agent reads
            local = workdir / mount["mountPath"].lstrip("/")
            local.mkdir(parents=True, exist_ok=True)
            for fname, content in files.items():
                (local / fname).write_bytes(content)
            mounts[mount["mountPath"].rstrip("/")] = local

        def remap(value: str) -> str:
            for mount_path, local in mounts.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    return str(local) + value[len(mount_path) :]
            return value

        env = dict(self.base_env)
        for var in container.get("env", []):
            env[var["name"]] = remap(self._env_value(ns, pod, var))
        # Every agent listens on its health/metrics port; give each process its own.
        self._ports[workdir] = self._assign_free_ports(mounts)
        command = list(container.get("command") or ["srs"])
        if Path(command[0]).name == "srs":
            command[0] = _srs_executable()
        argv = [remap(a) for a in command + list(container.get("args", []))]
        return argv, env

    def _config_map(self, ns: str, name: str) -> dict[str, bytes]:
        obj = _json(self.api.read_namespaced_config_map(name, ns, _preload_content=False))
        files = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        # binaryData (e.g. a trained offline model, model.json.gz) is base64 on the wire, like a Secret's data.
        files.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return files

    def _secret(self, ns: str, name: str) -> dict[str, bytes]:
        data = _json(self.api.read_namespaced_secret(name, ns, _preload_content=False)).get("data", {})
        return {k: base64.b64decode(v) for k, v in data.items()}

    def _volume_files(self, ns: str, volume: dict[str, Any]) -> dict[str, bytes] | None:
        if "configMap" in volume:
            return self._project(self._config_map(ns, volume["configMap"]["name"]), volume["configMap"].get("items"))
        if "secret" in volume:
            return self._project(self._secret(ns, volume["secret"]["secretName"]), volume["secret"].get("items"))
        return None

    @staticmethod
    def _project(data: dict[str, bytes], items: list[dict[str, str]] | None) -> dict[str, bytes]:
        if not items:
            return data
        return {item["path"]: data[item["key"]] for item in items if item["key"] in data}

    def _env_value(self, ns: str, pod: Pod, var: dict[str, Any]) -> str:
        src = var.get("valueFrom")
        if src is None:
            return str(var.get("value", ""))
        if "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            return self._secret(ns, ref["name"])[ref["key"]].decode()
        if "configMapKeyRef" in src:
            ref = src["configMapKeyRef"]
            return self._config_map(ns, ref["name"])[ref["key"]].decode()
        if "fieldRef" in src:
            fields = {
                "metadata.name": pod["metadata"]["name"],
                "metadata.namespace": ns,
                "metadata.uid": pod["metadata"]["uid"],
                "spec.nodeName": pod["spec"].get("nodeName", ""),
                "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
                "status.podIP": "127.0.0.1",
                "status.hostIP": "127.0.0.1",
            }
            return str(fields.get(src["fieldRef"]["fieldPath"], ""))
        return ""

    @staticmethod
    def _assign_free_ports(mounts: Mapping[str, Path]) -> int | None:
        """Give the agent config a free port; that port (None: no agent config mounted)."""
        port = None
        for local in mounts.values():
            for path in local.glob("*.yaml"):
                doc = yaml.safe_load(path.read_text())
                if isinstance(doc, dict) and doc.get("kind") == "AgentRuntimeConfig":
                    port = free_port()
                    doc.setdefault("server", {})["port"] = port
                    path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return port


def main(argv: list[str] | None = None) -> int:
    """``python -m devstack.podrunner``: run against ``$KUBECONFIG`` until stopped."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m devstack.podrunner",
        description="Run srs agent pods of the kwok fake node as local processes (the local stack's kubelet).",
    )
    parser.add_argument("--selector", default=DEFAULT_SELECTOR, help="label selector of the pods to run")
    parser.add_argument("--node", default=settings.NODE_NAME, help="the fake node whose pods to run")
    parser.add_argument("--workdir", default=None, help="where pod files go (default: $SRS_DEVSTACK_DIR/pods)")
    parser.add_argument("--logdir", default=None, help="pod logs (default: $SRS_DEVSTACK_DIR/logs/pods)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between syncs")
    parser.add_argument(
        "--exclude-namespace", action="append", default=[], metavar="GLOB",
        help="leave pods in matching namespaces alone (repeatable), e.g. srs-test-*",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config.load_kube_config()  # type: ignore[no-untyped-call]
    paths = settings.default_paths()
    workdir = Path(args.workdir) if args.workdir else paths.state / "pods"
    logdir = Path(args.logdir) if args.logdir else paths.logs / "pods"
    runner = PodRunner(
        client.CoreV1Api(), workdir, logdir, args.selector, args.node, exclude_namespaces=args.exclude_namespace,
        targets_dir=observability.targets_dir(paths),
    )  # fmt: skip
    runner.run(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
