"""How the offline triage agent scales with processes: 1, 2 and 4 real ``srs agent``
processes in one consumer group on one input topic of 8 partitions (default).

Each run starts P real agent processes (``srs agent --config``: exactly-once, health server
and metrics on, as a Deployment's replicas) on fresh topics, waits until all of them hold
partitions in their one consumer group, then sends ``--messages`` tickets. Throughput is
counted from the first output to the last (``srs_agent_produced_total`` of every process,
read every 50 ms), so start-up and the group's join do not count; CPU is what the agent
processes used in that window (``/proc/<pid>/stat``), per ticket. Every ticket must have
exactly one committed output (read_committed), or the run fails.

On a machine with C cores, processes beyond C share the cores: the table shows what
one process gives, and how close P processes come to P times that.

    source .devstack/env
    .venv/bin/python benchmarks/scaling_benchmark.py                      # 1, 2, 4 processes
    .venv/bin/python benchmarks/scaling_benchmark.py --processes 1 2 --messages 10000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

# The same tickets as the runtime benchmark (run as a script, this folder is on sys.path).
from runtime_benchmark import Topics, fill, progress

#: The agent command of this virtual environment.
SRS = str(Path(sys.executable).parent / "srs")
TYPES = ("billing", "technical", "feature_request", "account", "other")


@dataclass(frozen=True)
class Run:
    processes: int
    tickets: int
    seconds: float
    cpu_us_per_ticket: float

    @property
    def rate(self) -> float:
        return self.tickets / self.seconds if self.seconds > 0 else float("nan")


def produced(ports: Sequence[int]) -> int:
    """Outputs the agent processes have had acknowledged by Kafka, from their ``/metrics``
    (``srs_agent_produced_total``); a process not answering yet counts 0."""
    total = 0.0
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            continue
        total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("srs_agent_produced_total{"))  # fmt: skip
    return int(total)


def committed_outputs(bootstrap: str, topics: Sequence[str]) -> int:
    """Output records a read_committed reader sees (what customers would get)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"scale-count-{uuid.uuid4().hex[:8]}",
        "isolation.level": "read_committed", "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })  # fmt: skip
    consumer.subscribe(list(topics))
    seen, idle_since = 0, time.monotonic()
    try:
        while time.monotonic() - idle_since < 5:
            batch = consumer.consume(10_000, timeout=0.5)
            if batch:
                seen += sum(1 for m in batch if m.error() is None)
                idle_since = time.monotonic()
    finally:
        consumer.close()
    return seen


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU the processes have used so far (``/proc/<pid>/stat``)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def group_settled(admin: AdminClient, group: str, members: int) -> bool:
    """Every process has joined the group and holds partitions (no rebalance left to come)."""
    try:
        described = admin.describe_consumer_groups([group])[group].result(10)
    except Exception:  # noqa: BLE001 - not known to the coordinator yet
        return False
    return len(described.members) == members and all(m.assignment.topic_partitions for m in described.members)


def run(bootstrap: str, topics: Topics, count: int, size: int, processes: int, partitions: int) -> Run:
    group = f"scale-{uuid.uuid4().hex[:8]}"
    input_topic = topics.create(f"p{processes}-in", partitions)
    routes = {t: topics.create(f"p{processes}-{t.replace('_', '-')}", partitions) for t in TYPES}
    human = topics.create(f"p{processes}-human", partitions)
    dlq = topics.create(f"p{processes}-dlq", 1)
    outputs = [*routes.values(), human, dlq]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    children: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    with tempfile.TemporaryDirectory(prefix="srs-scale.") as tmp:
        for n in range(processes):
            ports.append(_free_port())
            config = {
                "name": "scale-triage", "role": "triage", "concurrency": 32,
                "kafka": {"group_id": group, "input_topic": input_topic, "dead_letter_topic": dlq},
                "triage": {"routes": routes, "human_topic": human},
                "server": {"port": ports[-1]},
            }  # fmt: skip
            path = Path(tmp) / f"agent-{n}.yaml"
            path.write_text(yaml.safe_dump(config))
            log = (Path(tmp) / f"agent-{n}.log").open("wb")
            env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SRS_POD_NAME": f"{group}-{n}"}
            children.append(subprocess.Popen([SRS, "agent", "--config", str(path)], env=env, stdout=log, stderr=log))
        try:
            # The tickets arrive once every process holds its partitions: a group still
            # rebalancing would hand work back and forth, which is not what is measured here.
            deadline = time.monotonic() + 120
            while not group_settled(admin, group, processes):
                if any(c.poll() is not None for c in children) or time.monotonic() > deadline:
                    raise RuntimeError(f"the agent processes did not settle into one group; logs in {tmp}")
                time.sleep(0.2)
            feeder = threading.Thread(target=fill, args=(bootstrap, input_topic, count, size), daemon=True)
            feeder.start()
            pids = [c.pid for c in children]
            first = last = 0.0
            at_first, cpu_first = 0, 0.0
            deadline = time.monotonic() + 600
            while True:
                done = produced(ports)
                now = time.perf_counter()
                if done > 0 and not first:
                    first, at_first, cpu_first = now, done, cpu_seconds(pids)
                if done >= count:
                    last, cpu = now, cpu_seconds(pids) - cpu_first
                    break
                if any(c.poll() is not None for c in children):
                    raise RuntimeError(f"an agent process exited early: {Path(tmp) / 'agent-0.log'}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{done} of {count} outputs after 600 s")
                time.sleep(0.05)
            feeder.join()
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                child.wait()
    seen = committed_outputs(bootstrap, outputs)
    if seen != count:
        raise RuntimeError(f"{seen} committed outputs for {count} tickets: not exactly one each")
    handled = count - at_first
    return Run(processes, handled, last - first, cpu * 1e6 / handled)


def _free_port() -> int:
    from devstack.processes import free_port

    return free_port()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--messages", type=int, default=20_000, help="tickets per run (default 20000)")
    parser.add_argument("--size", type=int, default=1024, help="ticket size in bytes (default 1024)")
    parser.add_argument("--partitions", type=int, default=8, help="partitions of the input topic (default 8)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4], help="runs (default 1 2 4)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not args.bootstrap_servers:
        parser.error("set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap-servers")
    topics = Topics(args.bootstrap_servers)
    try:
        runs = []
        for processes in args.processes:
            progress(f"{processes} agent process(es) …")
            runs.append(run(args.bootstrap_servers, topics, args.messages, args.size, processes, args.partitions))
            progress(f"  {runs[-1].rate:,.0f} tickets/s, {runs[-1].cpu_us_per_ticket:.0f} µs CPU/ticket")
    finally:
        progress("deleting the benchmark topics")
        topics.delete_all()
    one = runs[0].rate / runs[0].processes
    print(f"\noffline triage agent (`srs agent`, exactly-once), {args.messages} tickets, {args.partitions} partitions, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"{'processes':>9} {'tickets/s':>10} {'vs 1 process':>13} {'CPU µs/ticket':>14}")
    for r in runs:
        print(f"{r.processes:>9} {r.rate:>10,.0f} {r.rate / one:>12.2f}x {r.cpu_us_per_ticket:>14.0f}")
    if args.json:
        args.json.write_text(json.dumps({
            "benchmark": "scaling", "tickets": args.messages, "partitions": args.partitions, "cores": os.cpu_count(),
            "runs": [{**asdict(r), "tickets_per_second": r.rate} for r in runs],
        }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
