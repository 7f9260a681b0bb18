"""``srs dev up | down | status``: the local stack's lifecycle.

State lives in ``.devstack/`` (``SRS_DEVSTACK_DIR``): ``state.json`` records the ports
and the exact processes started, ``env`` exports ``KUBECONFIG`` and
``KAFKA_BOOTSTRAP_SERVERS``, ``logs/`` holds every process's output. Each ``up`` from a
stopped stack starts with empty etcd and Kafka data.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TextIO

from devstack import kafka, kube, settings
from devstack.processes import ProcessRecord, free_port, spawn, stop
from devstack.settings import Paths, default_paths


class PrerequisiteMissing(RuntimeError):
    """A tool the stack needs is not installed."""


@dataclass(frozen=True)
class StackState:
    """What ``up`` started, as persisted in ``state.json``."""

    kafka_bootstrap: str
    kubeconfig: str
    user_kubeconfig: str
    bin_dir: str
    ports: dict[str, int]
    processes: list[ProcessRecord]
    #: Processes attached to the running stack later (the demo's operator, pod runner).
    attached: list[ProcessRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["processes"] = [p.to_json() for p in self.processes]
        data["attached"] = [p.to_json() for p in self.attached]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        return cls(
            kafka_bootstrap=data["kafka_bootstrap"],
            kubeconfig=data["kubeconfig"],
            user_kubeconfig=data["user_kubeconfig"],
            bin_dir=data["bin_dir"],
            ports=dict(data["ports"]),
            processes=[ProcessRecord.from_json(p) for p in data["processes"]],
            attached=[ProcessRecord.from_json(p) for p in data.get("attached", [])],
        )

    def dead(self) -> list[ProcessRecord]:
        return [p for p in self.processes if not p.is_alive()]


def _say(msg: str) -> None:
    print(f"srs dev: {msg}", file=sys.stderr, flush=True)


def load_state(paths: Paths) -> StackState | None:
    try:
        return StackState.from_json(json.loads(paths.state_file.read_text()))
    except (OSError, ValueError, KeyError):
        return None


def check_prerequisites(paths: Paths) -> None:
    """Fail with one line naming what to install, checking only what this run needs."""
    needed = {"java": "a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)"}
    if not (paths.kafka_libs.is_dir()):
        needed["mvn"] = "Apache Maven (e.g. apt-get install maven) to fetch the Kafka jars"
    if not all((paths.go_bins / b).is_file() for b in kube.BINARIES):
        needed["go"] = "Go 1.24+ (https://go.dev/doc/install) to build the Kubernetes control plane"
    missing = [why for tool, why in needed.items() if shutil.which(tool) is None]
    if missing:
        raise PrerequisiteMissing("missing prerequisite: " + "; ".join(missing))


def up(paths: Paths | None = None) -> StackState:
    """Start the stack, or do nothing when it already runs. Idempotent."""
    paths = paths or default_paths()
    state = load_state(paths)
    if state is not None:
        if not state.dead():
            _say(f"already running (kafka {state.kafka_bootstrap}, kubeconfig {state.kubeconfig})")
            return state
        names = ", ".join(p.name for p in state.dead())
        _say(f"found a partly running stack ({names} not running); restarting it")
        down(paths, quiet=True)

    check_prerequisites(paths)
    t0 = time.monotonic()
    libs = kafka.ensure_jars(paths, _say)
    bins = kube.ensure_binaries(paths, _say)
    paths.logs.mkdir(parents=True, exist_ok=True)

    ports = kube.Ports(
        etcd=free_port(), etcd_peer=free_port(), apiserver=free_port(),
        controller_manager=free_port(), scheduler=free_port(), kwok=free_port(),
    )  # fmt: skip
    kafka_port, kafka_controller_port = free_port(), free_port()
    bootstrap = f"127.0.0.1:{kafka_port}"

    started: list[ProcessRecord] = []
    try:
        _say("starting kafka, etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
        admin, _user = kube.prepare(paths, ports)
        started.append(kafka.start(paths, libs, kafka_port, kafka_controller_port))
        started.extend(kube.start(paths, bins, ports))
        kube.wait_ready(paths, ports, admin, started)
        _say(f"control plane ready ({time.monotonic() - t0:.1f}s), fake node {settings.NODE_NAME} Ready")
        kafka.wait_ready(bootstrap, started[0])
        _say(f"kafka ready at {bootstrap} ({time.monotonic() - t0:.1f}s)")
    except BaseException:
        for record in reversed(started):
            stop(record)
        raise

    state = StackState(
        kafka_bootstrap=bootstrap,
        kubeconfig=str(paths.kubeconfig),
        user_kubeconfig=str(paths.user_kubeconfig),
        bin_dir=str(bins),
        ports={**asdict(ports), "kafka": kafka_port, "kafka_controller": kafka_controller_port},
        processes=started,
    )
    paths.state_file.write_text(json.dumps(state.to_json(), indent=2))
    paths.env_file.write_text(
        "# Written by `srs dev up`; source it to talk to the local stack.\n"
        f"export KUBECONFIG={paths.kubeconfig}\n"
        f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap}\n"
        f"export SRS_USER_KUBECONFIG={paths.user_kubeconfig}\n"
        f'export PATH="{bins}:$PATH"\n'
    )
    _say(f"up in {time.monotonic() - t0:.1f}s; run: source {paths.env_file}")
    return state


def down(paths: Paths | None = None, quiet: bool = False) -> None:
    """Stop exactly the processes ``up`` started; keep logs, drop data. Idempotent."""
    paths = paths or default_paths()
    state = load_state(paths)
    if state is None:
        if not quiet:
            _say("not running")
        return
    for record in [*reversed(state.attached), *reversed(state.processes)]:
        if record.is_alive() and not quiet:
            _say(f"stopping {record.name} (pid {record.pid})")
        stop(record)
    for leftover in (paths.state_file, paths.env_file):
        leftover.unlink(missing_ok=True)
    for data in ("kafka", "etcd"):
        shutil.rmtree(paths.state / data, ignore_errors=True)
    if not quiet:
        _say("stopped")


def status(paths: Paths | None = None, out: TextIO | None = None) -> bool:
    """Print what runs where; True when every component is running."""
    paths = paths or default_paths()
    out = out or sys.stdout
    state = load_state(paths)
    if state is None:
        print("local stack: not running (start it with `srs dev up`)", file=out)
        return False
    endpoints = {
        "kafka": state.kafka_bootstrap,
        "etcd": f"http://127.0.0.1:{state.ports['etcd']}",
        "kube-apiserver": f"https://127.0.0.1:{state.ports['apiserver']}",
        "kube-controller-manager": f"https://127.0.0.1:{state.ports['controller_manager']}",
        "kube-scheduler": f"https://127.0.0.1:{state.ports['scheduler']}",
        "kwok": f"http://127.0.0.1:{state.ports['kwok']}",
    }
    healthy = True
    for p in state.processes:
        alive = p.is_alive()
        healthy &= alive
        print(
            f"{p.name:<24} {'running' if alive else 'STOPPED':<8} pid {p.pid:<8} {endpoints.get(p.name, '')}",
            file=out,
        )
    for p in state.attached:
        print(f"{p.name:<24} {'running' if p.is_alive() else 'STOPPED':<8} pid {p.pid:<8} {p.log}", file=out)
    print(f"\nKUBECONFIG={state.kubeconfig}\nKAFKA_BOOTSTRAP_SERVERS={state.kafka_bootstrap}", file=out)
    print(f"non-admin kubeconfig: {state.user_kubeconfig}\nenv file: {paths.env_file}", file=out)
    return healthy


def attach(name: str, argv: list[str], env: dict[str, str], paths: Paths | None = None) -> ProcessRecord:
    """Run ``argv`` alongside the stack (stopped by ``down``); replaces a dead one of the
    same name, keeps a live one."""
    paths = paths or default_paths()
    state = load_state(paths)
    if state is None:
        raise RuntimeError("the local stack is not running; start it with `srs dev up`")
    for record in state.attached:
        if record.name == name and record.is_alive():
            return record
    record = spawn(name, argv, paths.logs / f"{name}.log", env)
    others = [r for r in state.attached if r.name != name]
    updated = replace(state, attached=[*others, record])
    paths.state_file.write_text(json.dumps(updated.to_json(), indent=2))
    return record
