"""``srs demo``: the main job end to end on the local stack (or, with ``--kind``, on kind).

Brings the stack up, installs the CRDs, starts the operator and the local pod runner,
applies ``examples/`` (every TicketTopic of the flow, a triage agent and five
specialists on the offline provider), waits until they are Ready, publishes the sample
tickets (plus one malformed message, to show the dead-letter path), shows them flowing
and ends with a summary. The stack, the operator and the agents keep running afterwards.

With ``--kind`` the same flow runs on the kind cluster of ``srs kind up``: the operator is
the Helm release there and every agent is a pod of the srs image under a real kubelet.

With ``--llm local`` (``make demo LLM=local``) a real language model answers: ``srs llm up``
starts llama.cpp's server with Gemma 3 270M, and ``examples/local-llm/`` replaces the
offline agents: the specialists draft through the model, and triage asks it about the
tickets the offline classifier is not sure of. The summary lists each ticket's tokens and
model time from its event's ``usage``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import observability, stack
from devstack.processes import free_port
from devstack.settings import default_paths
from srs_contracts.timestamps import parse_rfc3339

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LOCAL_LLM_EXAMPLES = EXAMPLES / "local-llm"
CRDS = ROOT / "crds"
INPUT_TOPIC = "ticket.events"
RESOLVED_TOPIC = "ticket.resolved"
HUMAN_TOPIC = "ticket.triaged.human"
DLQ_TOPIC = "ticket.dlq"
SPECIALTIES = ("billing", "technical", "feature_request", "account", "other")
TRIAGED_TOPICS = [f"ticket.triaged.{s}" for s in SPECIALTIES]


def say(msg: str) -> None:
    print(f"==> {msg}", flush=True)


@dataclass(frozen=True)
class Target:
    """Where the demo runs: a cluster, a broker and the folder that holds kubectl."""

    kubeconfig: str
    kafka_bootstrap: str
    bin_dir: str
    #: More librdkafka settings of the host's client (the kind cluster's SASL_SSL listeners).
    kafka_client: dict[str, str] = field(default_factory=dict)


@dataclass
class DemoResult:
    """What the demo observed: every published ticket's final stage and latency."""

    published: list[str]
    final_stage: dict[str, str] = field(default_factory=dict)
    resolved_types: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    dead_lettered: int = 0
    #: Per ticket: end-to-end latency (ms) and the ``usage`` its final event carries (model calls).
    ticket_latency_ms: dict[str, float] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def unaccounted(self) -> list[str]:
        return [t for t in self.published if t not in self.final_stage]


def _kubectl(state: Target, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": state.kubeconfig}
    return subprocess.run(
        [str(Path(state.bin_dir) / "kubectl"), *args], env=env, check=check, text=True, capture_output=True
    )


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _parse_time(value: str) -> float:
    return parse_rfc3339(value).timestamp() * 1000


def start_services(state: Target) -> None:
    """Install the CRDs and run the operator and the pod runner beside the stack."""
    say("installing the CRDs (crds/)")
    _kubectl(state, "apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    _kubectl(state, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    env = {"KUBECONFIG": state.kubeconfig, "KAFKA_BOOTSTRAP_SERVERS": state.kafka_bootstrap}
    paths = default_paths()
    endpoints = observability.load_endpoints(paths)
    if endpoints is not None:
        # `srs dev up --observability`: the operator traces, and passes OTEL_* on to the agent pods.
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoints.otlp_endpoint
    srs = str(Path(sys.executable).parent / "srs")
    # Standalone (no peering with other operators), and leaving the test suite's
    # namespaces (srs-test-*) to the operators the tests run themselves.
    op = stack.attach(
        "operator",
        [srs, "operator", "--standalone", "--namespace", "!srs-test-*", "--liveness", "",
         "--metrics-port", str(free_port())],
        env,
    )  # fmt: skip
    say(f"operator running (pid {op.pid}, log {op.log})")
    # Listed for Prometheus (`srs dev up --observability` scrapes it), like the pod runner lists the agents.
    metrics_port = op.argv[op.argv.index("--metrics-port") + 1]
    observability.write_target(observability.targets_dir(paths), "operator", f"127.0.0.1:{metrics_port}", {})
    if endpoints is not None:
        say(f"Prometheus {endpoints.prometheus_url}, traces {endpoints.traces_url} (srs dev up --observability)")
    # Test namespaces (srs-test-*) belong to the test suite's own operator and agents.
    runner = stack.attach(
        "podrunner", [sys.executable, "-m", "devstack.podrunner", "--exclude-namespace", "srs-test-*"], env
    )
    say(f"pod runner running (pid {runner.pid}, log {runner.log}): one `srs agent` process per Ready agent pod")


def render_local_llm_examples(base_url: str, into: Path) -> Path:
    """``examples/local-llm/`` with ``${SRS_LLM_BASE_URL}`` filled in, written to ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for source in sorted(LOCAL_LLM_EXAMPLES.glob("*.yaml")):
        (into / source.name).write_text(source.read_text().replace("${SRS_LLM_BASE_URL}", base_url))
    return into


def apply_examples(state: Target, timeout: int, local_llm: Path | None = None) -> None:
    if local_llm is None:
        say("applying examples/ (TicketTopics, a triage agent, five specialists)")
        _kubectl(state, "apply", "-f", str(EXAMPLES))
    else:
        say("applying examples/topics.yaml and examples/local-llm/ (agents that call the local model)")
        _kubectl(state, "apply", "-f", str(EXAMPLES / "topics.yaml"), "-f", str(local_llm))
    say("waiting for every TicketTopic and SupportAgent to be Ready")
    for kind in ("tickettopics", "supportagents"):
        done = _kubectl(state, "wait", "--for=condition=Ready", kind, "--all", f"--timeout={timeout}s", check=False)
        if done.returncode != 0:
            listing = _kubectl(state, "get", kind, check=False).stdout
            raise RuntimeError(f"{kind} not Ready after {timeout}s:\n{listing}{done.stderr}")
    print(_kubectl(state, "get", "supportagents").stdout, flush=True)


def run_flow(state: Target, tickets: int, timeout: float, quiet: bool = False) -> DemoResult:
    """Publish sample tickets plus one malformed message and follow them to the end."""
    from confluent_kafka import Producer

    from srs import publish
    from srs.flow import FlowReader, describe

    topics = [*TRIAGED_TOPICS, HUMAN_TOPIC, RESOLVED_TOPIC, DLQ_TOPIC]
    reader = FlowReader(state.kafka_bootstrap, topics, client=state.kafka_client)
    samples = publish.sample_tickets()
    chosen = [samples[i % len(samples)] for i in range(tickets)]
    say(f"publishing {len(chosen)} sample tickets and 1 malformed message to {INPUT_TOPIC}")
    sent = publish.publish(state.kafka_bootstrap, INPUT_TOPIC, chosen, progress=False, client=state.kafka_client)
    created_at = {e["ticket_id"]: _parse_time(e["created_at"]) for e in sent}
    poison_key = "T-malformed-0001"
    # acks=all (librdkafka's default, said here as srs publish says it): on three brokers the
    # poison message is on two replicas at least before the demo counts it as sent.
    producer = Producer(
        {**state.kafka_client, "bootstrap.servers": state.kafka_bootstrap, "acks": "all", "log_level": 3}
    )
    producer.produce(INPUT_TOPIC, key=poison_key.encode(), value=b'{"event_type": "ticket.created", "subject": ')
    producer.flush(10)

    result = DemoResult(published=[*created_at, poison_key])
    deadline = time.monotonic() + timeout
    try:
        for event in reader.events():
            if event is not None:
                if not quiet:
                    print("   " + describe(event), flush=True)
                tid = event.ticket_id or ""
                if tid in created_at and event.stage in ("resolved", "human"):
                    if tid not in result.final_stage:
                        result.latencies_ms.append(event.timestamp_ms - created_at[tid])
                        result.ticket_latency_ms[tid] = event.timestamp_ms - created_at[tid]
                        if isinstance(event.payload.get("usage"), dict):
                            result.usage[tid] = {**event.payload["usage"], "stage": event.stage}
                    result.final_stage[tid] = event.stage
                    if event.stage == "resolved":
                        result.resolved_types[str(event.payload.get("type"))] += 1
                elif event.stage == "dead-letter" and tid:
                    result.final_stage[tid] = "dead-letter"
                    result.dead_lettered += 1
            if not result.unaccounted or time.monotonic() > deadline:
                break
    finally:
        reader.close()
    return result


def summarize(result: DemoResult) -> str:
    stages = Counter(result.final_stage.values())
    lines = [
        "",
        "Summary",
        f"  published             {len(result.published)} (incl. 1 malformed)",
        f"  resolved              {stages['resolved']}",
    ]
    lines += [f"    {t:<19} {result.resolved_types[t]}" for t in SPECIALTIES]
    lines += [
        f"  human queue           {stages['human']}",
        f"  dead-letter (DLQ)     {stages['dead-letter']}",
        f"  unaccounted           {len(result.unaccounted)}",
    ]
    if result.latencies_ms:
        lat = result.latencies_ms
        lines.append(
            f"  end-to-end latency    p50 {_percentile(lat, 50):.0f} ms, p99 {_percentile(lat, 99):.0f} ms "
            f"(created → resolved/human, {len(lat)} tickets)"
        )
    if result.usage:
        lines += ["", "Model calls per ticket (from each final event's usage)",
                  f"  {'ticket':<24} {'outcome':<9} {'model':<14} {'calls':>5} {'in tok':>7} {'out tok':>7} "
                  f"{'model ms':>9} {'end-to-end ms':>14}"]  # fmt: skip
        for tid, spent in result.usage.items():
            lines.append(
                f"  {tid:<24} {spent['stage']:<9} {spent.get('model', '?')!s:<14} {spent['calls']:>5} "
                f"{spent['input_tokens']:>7} {spent['output_tokens']:>7} {spent['duration_ms']:>9.0f} "
                f"{result.ticket_latency_ms.get(tid, 0):>14.0f}"
            )
        total_out = sum(u["output_tokens"] for u in result.usage.values())
        total_ms = sum(u["duration_ms"] for u in result.usage.values())
        lines.append(f"  {len(result.usage)} tickets, {total_out} output tokens, {total_ms / 1000:.1f} s of model time")
    return "\n".join(lines)


NEXT_STEPS = """
Everything keeps running. Try:
  source .devstack/env
  kubectl get supportagents                       # or: kubectl get srs
  kubectl scale sagent billing --replicas=3       # three billing processes, one consumer group
  kubectl delete pod -l app.kubernetes.io/instance=billing --wait=false   # replacement pods get new processes
  srs publish --samples 20                        # more tickets
  srs tail                                        # follow resolutions, human queue, DLQ
  srs dev status                                  # what runs where (logs in .devstack/logs/)
  srs dev down                                    # stop everything
"""


NEXT_STEPS_KIND = """
Everything keeps running on the kind cluster. Try:
  source .kind/env
  kubectl get supportagents                       # agents are pods of the srs image
  kubectl get pods -o wide                        # scheduled on the kind node, run by its kubelet
  kubectl logs deploy/billing                     # JSON logs
  kubectl delete pod -l app.kubernetes.io/instance=billing --wait=false   # the Deployment replaces it
  srs publish --samples 20 && srs tail            # Kafka answers on the host's loopback
  helm list -A                                    # the operator's release
  srs kind down                                   # remove the cluster
"""


def run(
    tickets: int = 40, timeout: float = 180, quiet: bool = False, on_kind: bool = False, llm: str | None = None
) -> DemoResult:
    """The whole demo; returns what it observed (the e2e test asserts on it)."""
    t0 = time.monotonic()
    local_llm: Path | None = None
    if llm == "local":
        if on_kind:
            raise RuntimeError("--llm local runs on the local stack only (not with --kind)")
        from devstack import llm as local_model

        say("starting the local model server (first run builds llama.cpp's server: ~15-25 min)")
        served = local_model.up()
        local_llm = render_local_llm_examples(served.base_url, default_paths().state / "examples-local-llm")
    if on_kind:
        from devstack import kind

        say("bringing the kind cluster up (first run builds every image locally: ~20-30 min)")
        ks = kind.up()
        state = Target(ks.kubeconfig, ks.kafka_bootstrap, ks.bin_dirs[-1], ks.kafka_settings())
    else:
        say("bringing the local stack up (first run builds Kubernetes from source: ~6-10 min)")
        st = stack.up()
        state = Target(st.kubeconfig, st.kafka_bootstrap, st.bin_dir)
        start_services(state)
    apply_examples(state, timeout=int(timeout), local_llm=local_llm)
    result = run_flow(state, tickets, timeout, quiet=quiet)
    print(summarize(result), flush=True)
    say(f"demo finished in {time.monotonic() - t0:.0f}s")
    return result


def _run(args: argparse.Namespace) -> int:
    try:
        tickets = args.tickets if args.tickets is not None else (12 if args.llm == "local" else 40)
        result = run(tickets, args.timeout, quiet=args.quiet, on_kind=args.kind, llm=args.llm)
    except (RuntimeError, LookupError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or ""
        print(f"srs demo: {e}\n{detail}", file=sys.stderr)
        return 1
    print(NEXT_STEPS_KIND if args.kind else NEXT_STEPS)
    if result.unaccounted:
        print(f"srs demo: {len(result.unaccounted)} tickets not accounted for: {result.unaccounted[:5]}")
        return 1
    return 0


def register(sub: Any) -> None:
    """Add ``srs demo`` to the ``srs`` parser's subcommands."""
    p = sub.add_parser("demo", help="run the whole system on the local stack and resolve sample tickets",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "--tickets", type=int, default=None, help="how many sample tickets to publish (default 40; 12 with --llm local)"
    )
    p.add_argument("--timeout", type=float, default=180, help="seconds to wait for readiness and for the flow")
    p.add_argument("--quiet", action="store_true", help="only the summary, not every event")
    p.add_argument(
        "--kind", action="store_true", help="run on the kind cluster (`srs kind up`) instead of the local stack"
    )
    p.add_argument(
        "--llm", choices=["local"], default=None,
        help="local: the agents of examples/local-llm/ draft through a real model on loopback (`srs llm up`)",
    )  # fmt: skip
    p.set_defaults(func=_run)
