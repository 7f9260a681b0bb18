"""Apache Kafka in KRaft mode from Maven Central jars: one combined broker + controller, or
several (``srs dev up --brokers 3``: each its own process, data and ports, a controller
quorum of three), each with a PLAINTEXT and a SASL_SSL listener on loopback
(:mod:`devstack.kafka_auth` says why and how)."""

from __future__ import annotations

import base64
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from devstack import kafka_auth, locks, pki, settings
from devstack.kafka_auth import KafkaAuth
from devstack.processes import ProcessRecord, port_user, spawn, tail
from devstack.settings import Paths

POM = Path(__file__).parent / "kafka" / "pom.xml"

LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.org.name = org.apache.kafka
logger.org.level = WARN
"""


def ensure_jars(paths: Paths, progress: Callable[[str], None]) -> Path:
    """Resolve the broker's jars into the cache (first run only) and return the folder."""
    libs = paths.kafka_libs
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    with locks.exclusive(paths.cache, "kafka-jars", f"the Apache Kafka {settings.KAFKA_VERSION} jars", progress):
        if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
            return libs
        progress(f"fetching Apache Kafka {settings.KAFKA_VERSION} jars from Maven Central (first run only, ~1 min)")
        libs.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=libs.parent))
        subprocess.run(
            [
                "mvn", "-B", "-q", "-f", str(POM),
                f"org.apache.maven.plugins:maven-dependency-plugin:{settings.MAVEN_DEPENDENCY_PLUGIN_VERSION}:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
                f"-Dkafka.version={settings.KAFKA_VERSION}",
                f"-Dlog4j.version={settings.LOG4J_VERSION}",
            ],
            check=True,
        )  # fmt: skip
        staging.rename(libs)
    return libs


def cluster_id() -> str:
    """A KRaft cluster id: Kafka's ``Uuid``, 16 random bytes in unpadded base64url (22 chars).

    Like Kafka's ``Uuid.randomUuid``, never one that starts with ``-``: the storage tool
    would read it as an option (1 fresh stack in 64 failed to format)."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


#: Kafka's authorizer for KRaft clusters (ACLs kept in the metadata log).
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@dataclass(frozen=True)
class Broker:
    """One broker of the local stack (combined with a KRaft controller), on loopback."""

    node_id: int
    #: Its process and data folder: ``kafka`` when it is the only one, ``kafka-<id>`` of several.
    name: str
    #: PLAINTEXT, the fast path (principal ANONYMOUS, a super user: see devstack.kafka_auth).
    port: int
    #: SASL_SSL: TLS with the stack's CA, SCRAM-SHA-512, ACLs enforced.
    sasl_port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"


#: The broker counts ``srs dev up --brokers`` offers: one, or a quorum of three.
BROKER_COUNTS = (1, 3)


def broker_names(count: int) -> list[str]:
    """The brokers' names: ``kafka`` alone (as every stack before ``--brokers`` had), else
    ``kafka-1`` … ``kafka-N``."""
    return ["kafka"] if count == 1 else [f"kafka-{i}" for i in range(1, count + 1)]


def port_keys(name: str) -> tuple[str, str, str]:
    """The keys of a broker's ports in ``state.json``: PLAINTEXT, SASL_SSL, controller."""
    return name, f"{name}_sasl", f"{name}_controller"


def brokers(count: int, ports: Mapping[str, int]) -> list[Broker]:
    """The stack's brokers from the ports recorded for them."""
    members = []
    for node_id, name in enumerate(broker_names(count), start=1):
        plaintext, sasl, controller = port_keys(name)
        # No SASL_SSL port: a stack from before the listener, until `up` restarts its broker.
        members.append(Broker(node_id, name, ports[plaintext], ports.get(sasl, 0), ports[controller]))
    return members


def bootstrap_servers(members: Sequence[Broker]) -> str:
    """Every broker's PLAINTEXT listener (``KAFKA_BOOTSTRAP_SERVERS``)."""
    return ",".join(b.bootstrap for b in members)


def sasl_bootstrap_servers(members: Sequence[Broker]) -> str:
    """Every broker's SASL_SSL listener (``SRS_KAFKA_SASL_BOOTSTRAP_SERVERS``)."""
    return ",".join(b.sasl_bootstrap for b in members)


def replication(count: int) -> tuple[int, int]:
    """Replication factor and ``min.insync.replicas`` a cluster of ``count`` brokers holds:
    3 and 2 from three brokers on (one broker may die and ``acks=all`` producers go on)."""
    factor = min(count, 3)
    return factor, 2 if factor >= 3 else 1


def server_properties(broker: Broker, quorum: Sequence[Broker], data_dir: Path, auth: KafkaAuth) -> str:
    """The broker configuration: loopback only, auto-creation of topics off, ACLs enforced.

    Transactions (exactly-once agents): the broker looks for transactions past their
    timeout every second, not every 10 s (its default), so a crashed agent's open
    transaction stops blocking read_committed readers soon after its 10 s timeout.

    Replication: topics created without a replication factor (a TicketTopic without
    ``replicationFactor``) and the internal topics (offsets, transaction state) get what the
    cluster holds — 3 replicas and ``min.insync.replicas=2`` on three brokers, 1 on one.

    A KRaft snapshot every minute (Kafka's default: every hour), for a bug of every Kafka
    release to date (4.1.1 … 4.4.0; docs/kafka-security.md): a broker that starts again and
    replays a metadata log holding a deleted SCRAM user from the beginning may lose every
    SCRAM credential. Started from a snapshot it replays no deletion onto an empty image.
    """
    voters = ",".join(f"{b.node_id}@127.0.0.1:{b.controller_port}" for b in quorum)
    factor, min_isr = replication(len(quorum))
    return f"""\
process.roles=broker,controller
node.id={broker.node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{broker.port},SASL_SSL://127.0.0.1:{broker.sasl_port},CONTROLLER://127.0.0.1:{broker.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{broker.port},SASL_SSL://127.0.0.1:{broker.sasl_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms={kafka_auth.MECHANISM}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location={auth.broker_keystore}
authorizer.class.name={AUTHORIZER}
allow.everyone.if.no.acl.found=false
super.users={";".join(kafka_auth.SUPER_USERS)}
log.dirs={data_dir}/kraft
num.partitions=1
auto.create.topics.enable=false
delete.topic.enable=true
default.replication.factor={factor}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={factor}
offsets.topic.num.partitions=1
transaction.state.log.replication.factor={factor}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=4
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
share.coordinator.state.topic.replication.factor={factor}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
metadata.log.max.snapshot.interval.ms=60000
"""


def data_dir(paths: Paths, broker: Broker) -> Path:
    """A broker's folder: its ``server.properties`` and its storage (``kraft/``)."""
    return paths.state / broker.name


def is_formatted(paths: Paths, broker: Broker) -> bool:
    return (data_dir(paths, broker) / "kraft" / "meta.properties").is_file()


def _known_cluster_id(paths: Paths, quorum: Sequence[Broker]) -> str | None:
    """The cluster id of a broker already formatted (a lost broker rejoins its cluster)."""
    for broker in quorum:
        meta = data_dir(paths, broker) / "kraft" / "meta.properties"
        if meta.is_file():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.removeprefix("cluster.id=").strip()
    return None


def _java(paths: Paths, libs: Path, broker: Broker) -> list[str]:
    log4j = data_dir(paths, broker) / "log4j2.properties"
    return ["java", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]


def _jvm_options(count: int) -> list[str]:
    """Heap and JIT: the client JIT compiler only (C1): a fresh broker spent ~9 CPU-s more
    compiling with C2 while the operator benchmark created a thousand topics, and 2.8 against
    1.0 CPU-s for 300,000 1 KB records in and out — on two cores the compiler competes with
    everything else; the peak speed C2 reaches later is more than tests and the demo ever ask
    for. Several brokers share what one would have."""
    heap = ["-Xms256m", "-Xmx1g"] if count == 1 else ["-Xms128m", "-Xmx512m"]
    return [*heap, "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1"]


def prepare(paths: Paths, broker: Broker, quorum: Sequence[Broker], auth: KafkaAuth) -> Path:
    """Write the broker's configuration (every start: ports and settings follow the code)."""
    folder = data_dir(paths, broker)
    folder.mkdir(parents=True, exist_ok=True)
    props = folder / "server.properties"
    props.write_text(server_properties(broker, quorum, folder, auth))
    (folder / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
    return props


def format_storage(
    paths: Paths, libs: Path, brokers: Sequence[Broker], quorum: Sequence[Broker], auth: KafkaAuth
) -> None:
    """Format the storage of each of ``brokers`` that has none, all at once (a JVM each), in the
    cluster of the quorum's formatted brokers (a lost broker rejoins it) or a new one."""
    todo = [b for b in brokers if not is_formatted(paths, b)]
    if not todo:
        return
    cluster = _known_cluster_id(paths, quorum) or cluster_id()
    with ThreadPoolExecutor(len(todo)) as pool:
        for done in [pool.submit(_format_one, paths, libs, b, quorum, auth, cluster) for b in todo]:
            done.result()


def _format_one(
    paths: Paths, libs: Path, broker: Broker, quorum: Sequence[Broker], auth: KafkaAuth, cluster: str
) -> None:
    """Format one broker's storage with the admin's SCRAM credential in its bootstrap metadata.

    The storage tool reads its arguments from a file only the owner may read (``java @file``),
    so the admin's password is on no command line (``ps``) and in no error message."""
    props = prepare(paths, broker, quorum, auth)
    args = ["kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props), "--add-scram", auth.scram_argument()]
    argfile = data_dir(paths, broker) / "format.args"
    pki.write_private(argfile, "\n".join(_argfile_token(a) for a in args).encode() + b"\n")
    try:
        done = subprocess.run(
            [*_java(paths, libs, broker), f"@{argfile}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
    finally:
        argfile.unlink(missing_ok=True)
    if done.returncode != 0:
        detail = done.stderr.replace(auth.admin_password(), "***").strip()[-2000:]
        raise RuntimeError(f"formatting {broker.name}'s storage failed ({done.returncode}):\n{detail}")


def _argfile_token(arg: str) -> str:
    """One argument of a ``java @file``, quoted (paths may hold spaces)."""
    if '"' in arg or "\\" in arg or "\n" in arg:
        raise ValueError(f"cannot pass {arg!r} through a java argument file")
    return f'"{arg}"'


def start(paths: Paths, libs: Path, broker: Broker, quorum: Sequence[Broker], auth: KafkaAuth) -> ProcessRecord:
    """Start one broker on its ports, formatting its storage only the first time (a restart
    keeps every topic, committed offset, SCRAM credential and ACL); returns once the process
    is spawned."""
    format_storage(paths, libs, [broker], quorum, auth)
    props = prepare(paths, broker, quorum, auth)
    log = paths.logs / f"{broker.name}.log"
    argv = [*_java(paths, libs, broker), *_jvm_options(len(quorum)), "kafka.Kafka", str(props)]
    return spawn(broker.name, argv, log)


def _taken(broker: Broker | None, log_tail: str) -> str:
    """After "Address already in use": which of the broker's ports something else holds now, and what."""
    if broker is None or "Address already in use" not in log_tail:
        return ""
    ports = {"PLAINTEXT": broker.port, "SASL_SSL": broker.sasl_port, "controller": broker.controller_port}
    held = [f"{what} {port} ({who})" for what, port in ports.items() if port and (who := port_user(port))]
    return f"\n{broker.name}'s ports in use by another process now: " + ("; ".join(held) or "none")


def wait_ready(
    bootstrap: str, members: Mapping[int, ProcessRecord], timeout: float = 90, brokers: Sequence[Broker] = ()
) -> None:
    """Poll until every broker of ``members`` (node id → its process) is in the cluster's
    metadata (an AdminClient describe), failing early with the log of one that exited (and,
    when it could not bind, which of its ``brokers`` ports are taken, by what)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
    deadline = time.monotonic() + timeout
    while True:
        for record in members.values():
            if not record.is_alive():
                last = tail(record.log)
                broker = next((b for b in brokers if b.name == record.name), None)
                taken = _taken(broker, last)
                raise RuntimeError(f"{record.name} exited during startup; last log lines:\n{last}{taken}")
        try:
            if set(members) <= set(admin.list_topics(timeout=2).brokers):
                return
        except Exception:  # noqa: BLE001, S110 - anything short of an answer means "not yet"
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(f"{r.name}:\n{tail(r.log)}" for r in members.values())
            raise TimeoutError(f"kafka not ready after {timeout:.0f}s; last log lines:\n{logs}")
        time.sleep(0.2)
