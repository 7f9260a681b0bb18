"""How fast and how quiet the operator is on the local stack (or your own cluster + Kafka).

Two runs, each in fresh namespaces, each with its own ``srs operator`` subprocess
(standalone, watching only ``srs-test-opbench-*``; the demo's operator and pod runner leave
``srs-test-*`` namespaces alone, so nothing else reconciles or runs these objects):

1. N SupportAgents + N TicketTopics (default 1,000 + 1,000; agent i reads topic i and writes
   topics i+1, i+2, i+3, so every topic it uses has a TicketTopic). Reported:
   - time from the first apply until every agent and every topic is Ready;
   - p50/p99 from an agent's apply (create returned) to its Deployment being created
     (the Deployment's ADDED event on a watch);
   - when the operator's last write of the burst went out (its Events trail the status);
   - writes during ``--idle-seconds`` (default 60) of quiet afterwards, counted two ways:
     every change (resourceVersion) of a SupportAgent, a TicketTopic or an operator-owned
     child in the namespace, by any writer, and the operator's own write counter
     (``srs_operator_api_writes_total``);
   - the operator's peak RSS (``VmHWM``).
2. TicketTopics only (default 1,000): time until all are Ready.

Targets: 1,000 + 1,000 Ready within 60 s, 1,000 topics within 60 s, 0 idle writes,
operator RSS under 250 MB. Also reported: the CPU seconds of every process of the local
stack until all are Ready (the operator shares the machine with the API server, etcd,
the controller manager, Kafka and this script) and the operator's requests by kind.
Progress goes to stderr, figures to stdout; ``--json FILE`` writes them as JSON too.

Needs the CRDs (``kubectl apply -f crds/``).

    source .devstack/env
    .venv/bin/python benchmarks/operator_benchmark.py
    .venv/bin/python benchmarks/operator_benchmark.py --agents 50 --topic-only 200 --idle-seconds 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from kubernetes import client, config, watch

from devstack.processes import free_port, terminate
from devstack.settings import default_paths
from devstack.stack import load_state

ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION = "srs.dev", "v1alpha1"
PREFIX = "srs-test-opbench-"
MANAGED = "app.kubernetes.io/managed-by=srs-operator"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the operator under test --------------------------------------------------------------


@dataclass
class Operator:
    proc: subprocess.Popen[bytes]
    metrics_url: str
    log: Path

    def counter(self, name: str) -> float:
        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()  # noqa: S310 - localhost
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def requests(self) -> dict[str, float]:
        """The operator's own API requests so far, by "VERB resource" (all status codes)."""
        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()  # noqa: S310 - localhost
        out: dict[str, float] = {}
        for line in text.splitlines():
            if not line.startswith("srs_operator_api_requests_total{"):
                continue
            labels, value = line.rsplit(" ", 1)
            found = dict(part.split("=", 1) for part in labels[labels.index("{") + 1 : -1].split(","))
            key = f"{found['verb'].strip(chr(34))} {found['resource'].strip(chr(34))}"
            out[key] = out.get(key, 0.0) + float(value)
        return out

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def wait_for_earlier_namespaces(api: client.ApiClient) -> None:
    """kopf stalls (until its watch times out) when a watched namespace vanishes during its
    initial listing; so start only after earlier benchmark namespaces are gone."""
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + 180
    while any(n.metadata.name.startswith(PREFIX) for n in core.list_namespace().items):
        if time.monotonic() > deadline:
            raise RuntimeError(f"namespaces {PREFIX}* from an earlier run are still being deleted")
        progress(f"waiting for earlier {PREFIX}* namespaces to be deleted")
        time.sleep(3)


@contextlib.contextmanager
def operator(kubeconfig: str, bootstrap: str, log: Path) -> Iterator[Operator]:
    metrics_port, health_port = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": kubeconfig, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1"}
    argv = [
        sys.executable, "-m", "srs.cli", "operator", "--standalone", "--namespace", f"{PREFIX}*",
        "--metrics-port", str(metrics_port), "--liveness", f"http://127.0.0.1:{health_port}/healthz",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    running = Operator(proc, f"http://127.0.0.1:{metrics_port}/metrics", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the operator exited ({proc.returncode}); see {log}")
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{health_port}/healthz"
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the operator did not become live within 60 s; see {log}")
            time.sleep(0.2)
        yield running
    finally:
        terminate(proc, timeout=30)


# -- objects --------------------------------------------------------------------------------


def ticket_topic(name: str, topic: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TicketTopic",
        "metadata": {"name": name},
        "spec": {"topicName": topic, "partitions": 1, "deletionPolicy": "Retain"},
    }


def support_agent(name: str, topics: list[str], i: int) -> dict[str, Any]:
    n = len(topics)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SupportAgent",
        "metadata": {"name": name},
        "spec": {
            "role": "specialist",
            "specialty": "technical",
            "inputTopic": topics[i],
            "outputTopic": topics[(i + 1) % n],
            "humanTopic": topics[(i + 2) % n],
            "deadLetterTopic": topics[(i + 3) % n],
            "model": {"provider": "offline"},
        },
    }


def is_ready(obj: dict[str, Any]) -> bool:
    conds = (obj.get("status") or {}).get("conditions") or []
    generation = obj["metadata"].get("generation")
    return any(
        c["type"] == "Ready" and c["status"] == "True" and c.get("observedGeneration", generation) == generation
        for c in conds
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# -- measurements -------------------------------------------------------------------------


def watch_in_background(
    handle: Callable[[dict[str, Any]], None], func: Any, *args: Any, **kwargs: Any
) -> threading.Event:
    """Call ``handle`` with every event of ``func``'s watch (plain JSON: the client's models
    would cost this process more CPU than the operator's reconciles), in a thread, watching
    again whenever a watch ends, until the returned event is set."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            w = watch.Watch()
            with contextlib.suppress(Exception):
                for event in w.stream(func, *args, timeout_seconds=30, deserialize=False, **kwargs):
                    handle(event)
                    if stop.is_set():
                        w.stop()

    threading.Thread(target=run, daemon=True).start()
    return stop


@dataclass
class DeploymentWatch:
    """Arrival time of each Deployment's ADDED event in a namespace."""

    api: client.ApiClient
    namespace: str
    created: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        apps = client.AppsV1Api(self.api)
        self._stop = watch_in_background(
            self._seen, apps.list_namespaced_deployment, self.namespace, label_selector=MANAGED
        )

    def _seen(self, event: dict[str, Any]) -> None:
        self.created.setdefault(event["object"]["metadata"]["name"], time.monotonic())

    def stop(self) -> None:
        self._stop.set()


@dataclass
class ReadyWatch:
    """Which objects of a custom kind in a namespace are Ready now, from a watch (a list of a
    thousand objects twice a second would load the API server more than the operator does)."""

    api: client.ApiClient
    namespace: str
    plural: str
    ready: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        self._stop = watch_in_background(
            self._seen, custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, self.plural
        )

    def count(self) -> int:
        with self._lock:
            return len(self.ready)

    def _seen(self, event: dict[str, Any]) -> None:
        obj = event["object"]
        with self._lock:
            if event["type"] != "DELETED" and is_ready(obj):
                self.ready.add(obj["metadata"]["name"])
            else:
                self.ready.discard(obj["metadata"]["name"])

    def stop(self) -> None:
        self._stop.set()


def wait_until_quiet(op: Operator, start: float, timeout: float, quiet_for: float = 5.0) -> float:
    """Seconds from ``start`` until the operator's write counter last moved, once it has not
    moved for ``quiet_for`` seconds (the Events announcing Ready are posted after the status
    says so, and may trail it by seconds when a thousand are announced at once)."""
    last, last_change = op.counter("srs_operator_api_writes_total"), time.monotonic()
    while time.monotonic() - last_change < quiet_for:
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"the operator kept writing for {timeout:.0f}s")
        time.sleep(0.5)
        now = op.counter("srs_operator_api_writes_total")
        if now != last:
            last, last_change = now, time.monotonic()
    return last_change - start


def stack_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) of each process of the local stack now running, by name
    (empty when the stack is not the local one)."""
    paths = default_paths()
    state = load_state(paths)
    out: dict[str, float] = {}
    for record in [*state.processes, *state.attached] if state is not None else ():
        if record.is_alive():
            out[record.name] = cpu_seconds(record.pid)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_changes(api: client.ApiClient, namespace: str, seconds: float) -> dict[str, int]:
    """resourceVersion changes of the srs objects in ``namespace`` over ``seconds`` (any writer)."""
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    lists: dict[str, Callable[[], Any]] = {
        "supportagents": lambda: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "supportagents"),
        "tickettopics": lambda: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "tickettopics"),
        "deployments": lambda: apps.list_namespaced_deployment(namespace, label_selector=MANAGED),
        "configmaps": lambda: core.list_namespaced_config_map(namespace, label_selector=MANAGED),
        "services": lambda: core.list_namespaced_service(namespace, label_selector=MANAGED),
        "serviceaccounts": lambda: core.list_namespaced_service_account(namespace, label_selector=MANAGED),
    }

    def versions() -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for kind, fetch in lists.items():
            result = fetch()
            items = result["items"] if isinstance(result, dict) else result.items
            out[kind] = {
                (i["metadata"]["name"] if isinstance(i, dict) else i.metadata.name): (
                    i["metadata"]["resourceVersion"] if isinstance(i, dict) else i.metadata.resource_version
                )
                for i in items
            }
        return out

    before = versions()
    time.sleep(seconds)
    after = versions()
    return {
        kind: sum(1 for name, rv in after[kind].items() if before[kind].get(name) != rv)
        + len(set(before[kind]) - set(after[kind]))
        for kind in lists
    }


def wait_all_ready(
    api: client.ApiClient, namespace: str, plurals: list[str], expected: dict[str, int], start: float, timeout: float
) -> float:
    """Seconds from ``start`` until every object of ``plurals`` is Ready (watched, checked
    every 0.1 s)."""
    watches = {plural: ReadyWatch(api, namespace, plural) for plural in plurals}
    for w in watches.values():
        w.start()
    last_report = 0.0
    try:
        while True:
            counts = {plural: w.count() for plural, w in watches.items()}
            elapsed = time.monotonic() - start
            if all(counts[p] >= expected[p] for p in plurals):
                return elapsed
            if elapsed - last_report >= 5:
                last_report = elapsed
                ready = ", ".join(f"{p} {counts[p]}/{expected[p]}" for p in plurals)
                progress(f"ready: {ready} ({elapsed:.1f}s)")
            if elapsed > timeout:
                raise RuntimeError(f"not all Ready after {timeout:.0f}s: {counts}")
            time.sleep(0.1)
    finally:
        for w in watches.values():
            w.stop()


@contextlib.contextmanager
def bench_namespace(core: client.CoreV1Api, kind: str) -> Iterator[str]:
    name = f"{PREFIX}{kind}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name, propagation_policy="Background")


def create_all(fn: Callable[[dict[str, Any]], Any], bodies: list[dict[str, Any]], what: str) -> dict[str, float]:
    """Create concurrently; return name → monotonic time the create returned."""
    done: dict[str, float] = {}

    def one(body: dict[str, Any]) -> None:
        fn(body)
        done[body["metadata"]["name"]] = time.monotonic()
        if len(done) % 100 == 0:
            progress(f"applied {len(done)}/{len(bodies)} {what}")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, bodies))
    return done


def delete_kafka_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for i in range(0, len(topics), 500):
        for fut in admin.delete_topics(topics[i : i + 500], operation_timeout=60).values():
            with contextlib.suppress(Exception):
                fut.result(timeout=120)


# -- the runs -----------------------------------------------------------------------------


def run_agents_and_topics(
    api: client.ApiClient, args: argparse.Namespace, kubeconfig: str, bootstrap: str
) -> dict[str, Any]:
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    run = uuid.uuid4().hex[:6]
    topics = [f"bench-{run}-{i}" for i in range(args.topics)]
    results: dict[str, Any] = {}
    wait_for_earlier_namespaces(api)
    with (
        bench_namespace(core, "agents") as ns,
        operator(kubeconfig, bootstrap, args.log_dir / "operator-agents.log") as op,
    ):
        deployments = DeploymentWatch(api, ns)
        deployments.start()
        time.sleep(1)
        progress(f"applying {args.agents} SupportAgents and {args.topics} TicketTopics in {ns}")
        stack_before, own_before = stack_cpu_seconds(), time.process_time()
        start = time.monotonic()

        def create(plural: str) -> Callable[[dict[str, Any]], Any]:
            return lambda body: custom.create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)

        topic_bodies = [ticket_topic(f"t{i}", t) for i, t in enumerate(topics)]
        agent_bodies = [support_agent(f"agent-{i}", topics, i % len(topics)) for i in range(args.agents)]
        with ThreadPoolExecutor(max_workers=2) as both:
            topics_done = both.submit(create_all, create("tickettopics"), topic_bodies, "TicketTopics")
            agents_done = both.submit(create_all, create("supportagents"), agent_bodies, "SupportAgents")
            applied = agents_done.result()
            topics_done.result()
        ready = wait_all_ready(
            api, ns, ["supportagents", "tickettopics"], {"supportagents": args.agents, "tickettopics": args.topics},
            start, args.timeout,
        )  # fmt: skip
        stack_after, own_after = stack_cpu_seconds(), time.process_time()
        deployments.stop()
        latencies = [deployments.created[n] - t for n, t in applied.items() if n in deployments.created]
        cpu_until_ready = op.cpu_seconds()
        reconciles = op.counter('srs_operator_reconcile_duration_seconds_count{kind="SupportAgent"}')
        reconcile_seconds = op.counter('srs_operator_reconcile_duration_seconds_sum{kind="SupportAgent"}')
        requests = op.counter("srs_operator_api_request_duration_seconds_count")
        request_seconds = op.counter("srs_operator_api_request_duration_seconds_sum")
        requests_until_ready = op.requests()
        progress(f"all Ready after {ready:.1f}s; waiting for the operator's last writes (Events trail the status)")
        quiet = wait_until_quiet(op, start, args.timeout)
        progress(f"operator quiet after {quiet:.1f}s; idle for {args.idle_seconds:.0f}s, counting writes")
        requests_before_idle = op.requests()
        writes_before = op.counter("srs_operator_api_writes_total")
        changes = count_changes(api, ns, args.idle_seconds)
        writes = op.counter("srs_operator_api_writes_total") - writes_before
        idle_requests = {k: v - requests_before_idle.get(k, 0.0) for k, v in op.requests().items()}
        results = {
            "agents": args.agents,
            "topics": args.topics,
            "all_ready_seconds": ready,
            "operator_quiet_seconds": quiet,
            "apply_to_deployment_p50_ms": percentile(latencies, 50) * 1000,
            "apply_to_deployment_p99_ms": percentile(latencies, 99) * 1000,
            "deployments_seen": len(latencies),
            "idle_seconds": args.idle_seconds,
            "idle_object_changes": changes,
            "idle_operator_writes": writes,
            "idle_operator_requests": {k: v for k, v in idle_requests.items() if v},
            "requests_until_ready": requests_until_ready,
            "operator_peak_rss_mb": op.peak_rss_mb(),
            "operator_cpu_seconds": cpu_until_ready,
            "agent_reconciles": reconciles,
            "agent_reconcile_mean_ms": 1000 * reconcile_seconds / reconciles if reconciles else float("nan"),
            "api_requests": requests,
            "api_request_mean_ms": 1000 * request_seconds / requests if requests else float("nan"),
            "operator_api_writes_total": op.counter("srs_operator_api_writes_total"),
            # Who used the two cores until all were Ready.
            "cpu_seconds_until_ready": {
                "srs operator": cpu_until_ready,
                **{name: stack_after[name] - stack_before[name] for name in stack_after if name in stack_before},
                "this benchmark": own_after - own_before,
            },
        }
    delete_kafka_topics(bootstrap, topics)
    return results


def run_topics_only(api: client.ApiClient, args: argparse.Namespace, kubeconfig: str, bootstrap: str) -> dict[str, Any]:
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    run = uuid.uuid4().hex[:6]
    topics = [f"bench-{run}-{i}" for i in range(args.topic_only)]
    wait_for_earlier_namespaces(api)
    with (
        bench_namespace(core, "topics") as ns,
        operator(kubeconfig, bootstrap, args.log_dir / "operator-topics.log") as op,
    ):
        progress(f"applying {args.topic_only} TicketTopics in {ns}")
        start = time.monotonic()
        create_all(
            lambda body: custom.create_namespaced_custom_object(GROUP, VERSION, ns, "tickettopics", body),
            [ticket_topic(f"t{i}", t) for i, t in enumerate(topics)],
            "TicketTopics",
        )
        applied = time.monotonic() - start
        ready = wait_all_ready(api, ns, ["tickettopics"], {"tickettopics": args.topic_only}, start, args.timeout)
        results = {
            "topics": args.topic_only,
            "apply_seconds": applied,
            "all_ready_seconds": ready,
            "operator_peak_rss_mb": op.peak_rss_mb(),
        }
    delete_kafka_topics(bootstrap, topics)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark the srs operator: N SupportAgents + N TicketTopics until Ready, idle writes, "
        "peak RSS; then a TicketTopic-only run. Needs KUBECONFIG and KAFKA_BOOTSTRAP_SERVERS "
        "(source .devstack/env for the local stack)."
    )
    parser.add_argument("--agents", type=int, default=1000, help="SupportAgents in the first run (default 1000)")
    parser.add_argument("--topics", type=int, default=None, help="TicketTopics in the first run (default: --agents)")
    parser.add_argument("--topic-only", type=int, default=1000, help="TicketTopics in the second run (0 skips it)")
    parser.add_argument("--idle-seconds", type=float, default=60, help="quiet period for counting writes")
    parser.add_argument("--timeout", type=float, default=300, help="give up waiting for Ready after this long")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"), help="where the operator logs go")  # noqa: S108
    args = parser.parse_args(argv)
    args.topics = args.topics if args.topics is not None else args.agents
    if args.topics < 4:
        parser.error("--topics must be at least 4 (each agent uses 4 topics)")
    kubeconfig = os.environ.get("KUBECONFIG")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not kubeconfig or not bootstrap:
        parser.error("set KUBECONFIG and KAFKA_BOOTSTRAP_SERVERS (e.g. source .devstack/env)")
    api = config.new_client_from_config(config_file=kubeconfig)
    try:
        client.ApiextensionsV1Api(api).read_custom_resource_definition("supportagents.srs.dev")
    except client.ApiException as e:
        if e.status != 404:
            raise
        parser.error("the SupportAgent CRD is not installed: kubectl apply -f crds/")

    first = run_agents_and_topics(api, args, kubeconfig, bootstrap)
    print(f"SupportAgents + TicketTopics: {first['agents']} + {first['topics']}")
    print(f"  all Ready after                 {first['all_ready_seconds']:.1f} s   (target < 60 s)")
    print(f"  operator's last write after     {first['operator_quiet_seconds']:.1f} s   (its Events trail the status)")
    print(
        f"  apply -> Deployment created     p50 {first['apply_to_deployment_p50_ms']:.0f} ms, "
        f"p99 {first['apply_to_deployment_p99_ms']:.0f} ms ({first['deployments_seen']} seen)"
    )
    changes = first["idle_object_changes"]
    print(
        f"  writes in {first['idle_seconds']:.0f} idle seconds        "
        f"operator {first['idle_operator_writes']:.0f}, "
        f"object changes by anyone {sum(changes.values())} {changes}   (target 0)"
    )
    print(f"  operator peak RSS               {first['operator_peak_rss_mb']:.0f} MB   (target < 250 MB)")
    print(f"  operator CPU until all Ready    {first['operator_cpu_seconds']:.1f} s")
    print(
        f"  SupportAgent reconciles         {first['agent_reconciles']:.0f}, mean "
        f"{first['agent_reconcile_mean_ms']:.0f} ms; operator API requests {first['api_requests']:.0f}, "
        f"mean {first['api_request_mean_ms']:.0f} ms"
    )
    by_kind = sorted(first["requests_until_ready"].items(), key=lambda kv: -kv[1])
    print("  operator requests until Ready   " + ", ".join(f"{k} {v:.0f}" for k, v in by_kind))
    if first["idle_operator_requests"]:
        idle = ", ".join(f"{k} {v:.0f}" for k, v in first["idle_operator_requests"].items())
        print(f"  operator requests while idle    {idle}")
    cpu = first["cpu_seconds_until_ready"]
    print("  CPU seconds until all Ready     " + ", ".join(f"{name} {secs:.1f}" for name, secs in cpu.items()))
    if args.json is not None:
        args.json.write_text(json.dumps({"agents_and_topics": first}, indent=2))
    if args.topic_only:
        second = run_topics_only(api, args, kubeconfig, bootstrap)
        print(f"TicketTopics only: {second['topics']}")
        print(
            f"  all Ready after                 {second['all_ready_seconds']:.1f} s   (target < 60 s; "
            f"applying took {second['apply_seconds']:.1f} s)"
        )
        print(f"  operator peak RSS               {second['operator_peak_rss_mb']:.0f} MB")
        if args.json is not None:
            args.json.write_text(json.dumps({"agents_and_topics": first, "topics_only": second}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
