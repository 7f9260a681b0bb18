"""``srs dev up | down | status | reset``: the local stack's lifecycle.

State lives in ``.devstack/`` (``SRS_DEVSTACK_DIR``): ``state.json`` records the ports,
the number of Kafka brokers and the exact processes started, ``env`` exports
``KUBECONFIG``, ``KAFKA_BOOTSTRAP_SERVERS`` and the SASL_SSL listeners' settings
(:mod:`devstack.kafka_auth`), ``logs/`` holds every process's output.

The stack restarts in place: ``up`` starts only the components that are not running,
on the ports recorded in ``state.json`` and on their existing data (etcd's, Kafka's,
the PKI and the kubeconfigs), so every client — the operator, the pod runner, the
agents, a shell that sourced ``env`` — keeps working once the component is back.
Attached processes (the demo's operator and pod runner) that died are restarted too.
``up`` and ``down`` never delete data; only ``srs dev reset`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TextIO

from devstack import kafka, kafka_auth, kcat, kube, llm, locks, observability, processes, settings
from devstack.kafka_auth import KafkaAuth
from devstack.processes import ProcessRecord, free_port, spawn, stop
from devstack.settings import Paths, default_paths

#: What ``srs dev reset`` deletes (logs are kept).
DATA = (
    *dict.fromkeys(name for count in kafka.BROKER_COUNTS for name in kafka.broker_names(count)),
    "kafka-auth", "bin", "etcd", "pki", "pods", "kubeconfig", "kubeconfig-user", "env", "state.json", "observability",
)  # fmt: skip


def components(brokers: int) -> tuple[str, ...]:
    """Every process of the stack itself, in start order: the brokers, then the control plane."""
    return (*kafka.broker_names(brokers), *kube.COMPONENTS)


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
    #: Every broker's SASL_SSL listener; empty in a stack from before they existed.
    kafka_sasl_bootstrap: str = ""
    #: How many Kafka brokers the stack has (chosen by its first ``up``, kept afterwards).
    kafka_brokers: int = 1

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
            kafka_sasl_bootstrap=data.get("kafka_sasl_bootstrap", ""),
            kafka_brokers=int(data.get("kafka_brokers", 1)),
        )

    def dead(self) -> list[ProcessRecord]:
        return [p for p in self.processes if not p.is_alive()]

    def running(self) -> bool:
        """Whether any component of the stack runs."""
        return any(p.is_alive() for p in self.processes)

    def kube_ports(self) -> kube.Ports:
        return kube.Ports(**{k: self.ports[k] for k in asdict(kube.Ports(0, 0, 0, 0, 0, 0))})

    def brokers(self) -> list[kafka.Broker]:
        return kafka.brokers(self.kafka_brokers, self.ports)

    def process(self, name: str) -> ProcessRecord:
        return next(p for p in self.processes if p.name == name)


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


def up(paths: Paths | None = None, brokers: int | None = None) -> StackState:
    """Start the stack, or only its components that are not running (same ports, same
    data). Idempotent; never deletes data. ``brokers``: how many Kafka brokers a new stack
    gets (default 1); an existing stack keeps its count, and a different one is an error.
    One ``up`` at a time per stack: test sessions and terminals run it at once, and two that
    both found a component dead would both start it on the same ports."""
    paths = paths or default_paths()
    with locks.exclusive(paths.state, "up", "the local stack", _say):
        return _up(paths, brokers)


def _up(paths: Paths, brokers: int | None) -> StackState:
    state = load_state(paths)
    count = _broker_count(state, brokers)
    names = components(count)
    if state is not None and not state.dead() and len(state.processes) == len(names) and state.kafka_sasl_bootstrap:
        state = _restart_attached(paths, state)
        # The env file and kcat wrapper follow this version of srs even when nothing restarts.
        write_env(paths, state)
        kcat.write_wrapper(paths)
        _say(f"already running (kafka {state.kafka_bootstrap}, kubeconfig {state.kubeconfig})")
        return state

    check_prerequisites(paths)
    t0 = time.monotonic()
    libs = kafka.ensure_jars(paths, _say)
    bins = kube.ensure_binaries(paths, _say)
    paths.logs.mkdir(parents=True, exist_ok=True)

    if state is None:
        ports = kube.Ports(
            etcd=free_port(), etcd_peer=free_port(), apiserver=free_port(),
            controller_manager=free_port(), scheduler=free_port(), kwok=free_port(),
        )  # fmt: skip
        all_ports: dict[str, int] = dict(asdict(ports))
        alive: dict[str, ProcessRecord] = {}
    else:
        ports, all_ports = state.kube_ports(), dict(state.ports)
        alive = {p.name: p for p in state.processes if p.is_alive()}
        if not state.kafka_sasl_bootstrap:
            _upgrade_kafka(alive)
    for name in kafka.broker_names(count):
        for key in kafka.port_keys(name):
            all_ports.setdefault(key, free_port())
    members = kafka.brokers(count, all_ports)
    bootstrap = kafka.bootstrap_servers(members)
    missing = [name for name in names if name not in alive]
    if alive:
        _say(f"restarting {', '.join(missing)} in place (same ports, same data); {', '.join(alive)} kept running")
    else:
        _say(f"starting {', '.join(missing)}")
    _check_ports_free(missing, all_ports)

    auth, new_password = kafka_auth.ensure(paths.kafka_auth)
    # A password made now for storage formatted before it: the cluster must be told.
    tell_cluster = new_password and any(kafka.is_formatted(paths, b) for b in members)
    started: list[ProcessRecord] = []
    try:
        admin = kube.prepare(paths, ports)
        kafka.format_storage(paths, libs, [b for b in members if b.name in missing], members, auth)
        for name in missing:
            broker = next((b for b in members if b.name == name), None)
            if broker is not None:
                record = kafka.start(paths, libs, broker, members, auth)
            else:
                record = kube.start_one(name, paths, bins, ports)
            started.append(record)
            alive[name] = record
        records = [alive[name] for name in names]
        kube.wait_ready(paths, ports, admin, records)
        _say(f"control plane ready ({time.monotonic() - t0:.1f}s), fake node {settings.NODE_NAME} Ready")
        kafka.wait_ready(bootstrap, {b.node_id: alive[b.name] for b in members}, brokers=members)
        if any(b.name in missing for b in members) and kafka_auth.admin_upsert(bootstrap, auth, force=tell_cluster):
            _say(f"gave the admin principal {kafka_auth.ADMIN_USER} its SCRAM credential (a stack formatted before it)")
        kafka_auth.write_client_config(auth, kafka.sasl_bootstrap_servers(members))
        kcat.write_wrapper(paths)
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
        ports=all_ports,
        processes=records,
        attached=state.attached if state is not None else [],
        kafka_sasl_bootstrap=kafka.sasl_bootstrap_servers(members),
        kafka_brokers=count,
    )
    _write_state(paths, state)
    write_env(paths, state)
    state = _restart_attached(paths, state)
    _say(f"up in {time.monotonic() - t0:.1f}s; run: source {paths.env_file}")
    return state


def _broker_count(state: StackState | None, requested: int | None) -> int:
    """The stack's number of brokers: what a new stack is asked for (1 by default), what an
    existing one has; asking an existing stack for another count is an error saying what to do."""
    if requested is not None and requested not in kafka.BROKER_COUNTS:
        raise ValueError(f"--brokers must be one of {', '.join(map(str, kafka.BROKER_COUNTS))}, not {requested}")
    if state is None:
        return requested or 1
    if requested is not None and requested != state.kafka_brokers:
        raise RuntimeError(
            f"this stack has {state.kafka_brokers} Kafka broker(s) and keeps them (their data is the cluster's); "
            f"for {requested}: `srs dev reset && srs dev up --brokers {requested}` (reset deletes the stack's data: "
            "topics, Kubernetes objects, credentials), or `srs dev up` without --brokers to keep this one"
        )
    return state.kafka_brokers


def _upgrade_kafka(alive: dict[str, ProcessRecord]) -> None:
    """A stack from before the SASL_SSL listener: its running broker restarts with the listener
    on its own data (the admin principal is given its credential once it answers)."""
    if "kafka" in alive:
        _say(
            "kafka runs without its SASL_SSL listener (a stack from before it): "
            "restarting it with the listener, on the same data"
        )
        stop(alive.pop("kafka"))


def _running_state(paths: Paths | None) -> tuple[Paths, StackState]:
    paths = paths or default_paths()
    state = load_state(paths)
    if state is None or not state.running():
        raise RuntimeError("the local stack is not running; start it with `srs dev up`")
    return paths, state


def _broker(state: StackState, node_id: int) -> kafka.Broker:
    for broker in state.brokers():
        if broker.node_id == node_id:
            return broker
    ids = ", ".join(str(b.node_id) for b in state.brokers())
    raise RuntimeError(f"the local stack has no Kafka broker {node_id} (its brokers: {ids})")


def stop_broker(node_id: int, *, kill: bool = False, paths: Paths | None = None) -> ProcessRecord:
    """Stop one broker of the running stack and leave the others running. By default as an
    orderly shutdown (SIGTERM: its partitions' leadership moves first); with ``kill`` as a
    crash (SIGKILL of its process group, like deleting its pod with no grace period).
    :func:`start_broker` (or ``srs dev up``) starts it again. Returns the stopped process."""
    paths, state = _running_state(paths)
    record = state.process(_broker(state, node_id).name)
    if kill:
        processes.kill(record)
    else:
        stop(record, timeout=60)  # an orderly shutdown waits for the controller
    return record


def start_broker(node_id: int, *, paths: Paths | None = None, timeout: float = 90) -> ProcessRecord:
    """Start one stopped broker again, on its ports and data, and wait until it is back in the
    cluster's metadata; a running one is left alone. Returns its process."""
    paths, state = _running_state(paths)
    broker = _broker(state, node_id)
    record = state.process(broker.name)
    if not record.is_alive():
        _check_ports_free([broker.name], state.ports)
        auth, _ = kafka_auth.ensure(paths.kafka_auth)
        record = kafka.start(paths, kafka.ensure_jars(paths, _say), broker, state.brokers(), auth)
        state = replace(state, processes=[record if p.name == broker.name else p for p in state.processes])
        _write_state(paths, state)
    kafka.wait_ready(state.kafka_bootstrap, {node_id: record}, timeout, brokers=[broker])
    return record


def write_env(paths: Paths, state: StackState | None = None) -> None:
    """Write ``.devstack/env``: the stack's endpoints (and, after ``--observability``,
    Prometheus's and Jaeger's)."""
    state = state or load_state(paths)
    if state is None:
        return
    # Replaced atomically: a shell may source it while another srs process writes it.
    staging = paths.env_file.with_name(f".env.{os.getpid()}")
    staging.write_text(
        "# Written by `srs dev up`; source it to talk to the local stack.\n"
        f"export KUBECONFIG={paths.kubeconfig}\n"
        f"export KAFKA_BOOTSTRAP_SERVERS={state.kafka_bootstrap}\n"
        + (
            kafka_auth.env_lines(KafkaAuth(paths.kafka_auth), state.kafka_sasl_bootstrap)
            if state.kafka_sasl_bootstrap
            else ""
        )
        + f"export SRS_USER_KUBECONFIG={paths.user_kubeconfig}\n"
        # kcat first: Debian's on a librdkafka that logs in to Kafka 4 (devstack/kcat.py).
        f'export PATH="{kcat.bin_dir(paths)}:{state.bin_dir}:$PATH"\n'
        + observability.env_exports(paths, [r.name for r in state.attached])
        # `srs llm up`'s server, when it runs (its line survives a restart of the stack).
        + llm.env_lines(paths)
    )
    staging.replace(paths.env_file)


def _check_ports_free(names: list[str], ports: dict[str, int]) -> None:
    """A component restarts on its recorded ports; say so clearly when one is taken."""
    wanted: dict[str, tuple[str, ...]] = {
        **{name: kafka.port_keys(name) for count in kafka.BROKER_COUNTS for name in kafka.broker_names(count)},
        "etcd": ("etcd", "etcd_peer"),
        "kube-apiserver": ("apiserver",),
        "kube-controller-manager": ("controller_manager",),
        "kube-scheduler": ("scheduler",),
        "kwok": ("kwok",),
    }

    def listening(port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

    for name in names:
        for key in wanted[name]:
            deadline = time.monotonic() + 10  # a process that just died may still be closing
            while listening(ports[key]) and time.monotonic() < deadline:
                time.sleep(0.2)
            if listening(ports[key]):
                raise RuntimeError(
                    f"port {ports[key]} of {name} is in use by another process; stop it, or start "
                    "afresh (new ports, empty data) with `srs dev reset && srs dev up`"
                )


def _restart_attached(paths: Paths, state: StackState) -> StackState:
    """Restart attached processes (the demo's operator, pod runner) that died, as attached."""
    dead = [r for r in state.attached if not r.is_alive() and r.argv]
    if not dead:
        return state
    attached = [r for r in state.attached if r not in dead]
    for record in dead:
        env = {**os.environ, **record.env}
        new = spawn(record.name, record.argv, paths.logs / f"{record.name}.log", env, env_overrides=record.env)
        _say(f"restarted {record.name} (pid {new.pid})")
        attached.append(new)
    state = replace(state, attached=attached)
    _write_state(paths, state)
    return state


def _write_state(paths: Paths, state: StackState) -> None:
    paths.state.mkdir(parents=True, exist_ok=True)
    tmp = paths.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2))
    tmp.replace(paths.state_file)


def down(paths: Paths | None = None, quiet: bool = False) -> None:
    """Stop exactly the processes ``up`` (and ``attach``) started; keep data, ports and logs,
    so the next ``up`` resumes where this one stopped. Idempotent."""
    paths = paths or default_paths()
    with locks.exclusive(paths.state, "up", "the local stack", _say):
        _down(paths, quiet)


def _down(paths: Paths, quiet: bool) -> None:
    state = load_state(paths)
    if state is None or not (state.running() or any(p.is_alive() for p in state.attached)):
        if not quiet:
            _say("not running")
        return
    brokers = {b.name for b in state.brokers()}
    for record in [*reversed(state.attached), *reversed(state.processes)]:
        if record.is_alive() and not quiet:
            _say(f"stopping {record.name} (pid {record.pid})")
        if record.name not in brokers:
            stop(record)
    # Every broker at once: stopped one by one, the last ones would wait for a quorum that is gone.
    processes.stop_all([p for p in state.processes if p.name in brokers])
    # Attached processes are the caller's to start again (``srs demo``), not ``up``'s.
    _write_state(paths, replace(state, attached=[]))
    if not quiet:
        _say(f"stopped; data kept in {paths.state} (`srs dev up` resumes it, `srs dev reset` deletes it)")


def reset(paths: Paths | None = None) -> None:
    """Stop everything and delete the stack's data (etcd, Kafka, PKI, kubeconfigs, pod files);
    logs are kept. The next ``up`` starts an empty stack on new ports."""
    paths = paths or default_paths()
    with locks.exclusive(paths.state, "up", "the local stack", _say):
        _down(paths, quiet=True)
        for name in DATA:
            target = paths.state / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
    _say(f"reset: deleted the stack's data in {paths.state} (logs kept)")


def status(paths: Paths | None = None, out: TextIO | None = None) -> bool:
    """Print what runs where; True when every component is running."""
    paths = paths or default_paths()
    out = out or sys.stdout
    state = load_state(paths)
    if state is None or not state.running():
        print("local stack: not running (start it with `srs dev up`)", file=out)
        return False
    endpoints = {
        **{
            b.name: f"{b.bootstrap}" + (f" (SASL_SSL {b.sasl_bootstrap})" if b.sasl_port else "")
            for b in state.brokers()
        },
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
    if state.kafka_sasl_bootstrap:
        auth = KafkaAuth(paths.kafka_auth)
        print(f"SRS_KAFKA_SASL_BOOTSTRAP_SERVERS={state.kafka_sasl_bootstrap}", file=out)
        print(f"KAFKA_CLIENT_CONFIG={auth.client_config} (admin {kafka_auth.ADMIN_USER} over SASL_SSL)", file=out)
    print(f"non-admin kubeconfig: {state.user_kubeconfig}\nenv file: {paths.env_file}", file=out)
    return healthy


def attach(name: str, argv: list[str], env: dict[str, str], paths: Paths | None = None) -> ProcessRecord:
    """Run ``argv`` alongside the stack, with the caller's environment plus ``env`` (stopped by
    ``down``, restarted by ``up`` when it died); replaces a dead one of the same name, keeps a
    live one. Only ``env`` is recorded (in ``state.json``), never the whole environment."""
    paths = paths or default_paths()
    state = load_state(paths)
    if state is None or not state.running():
        raise RuntimeError("the local stack is not running; start it with `srs dev up`")
    for record in state.attached:
        if record.name == name and record.is_alive():
            return record
    record = spawn(name, argv, paths.logs / f"{name}.log", {**os.environ, **env}, env_overrides=env)
    others = [r for r in state.attached if r.name != name]
    _write_state(paths, replace(state, attached=[*others, record]))
    return record
