"""Apache Kafka in KRaft mode (one combined broker + controller) from Maven Central jars."""

from __future__ import annotations

import base64
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from devstack import locks, settings
from devstack.processes import ProcessRecord, spawn, wait_until
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


def server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    """The broker configuration: loopback only, auto-creation of topics off.

    Transactions (exactly-once agents): the broker looks for transactions past their
    timeout every second, not every 10 s (its default), so a crashed agent's open
    transaction stops blocking read_committed readers soon after its 10 s timeout.
    """
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}/kraft
num.partitions=1
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""


def start(paths: Paths, libs: Path, port: int, controller_port: int) -> ProcessRecord:
    """Start the broker on its ports, formatting its storage only the first time (a
    restart keeps every topic and committed offset); returns once the process is spawned."""
    data = paths.state / "kafka"
    data.mkdir(parents=True, exist_ok=True)
    formatted = (data / "kraft" / "meta.properties").is_file()
    props = data / "server.properties"
    props.write_text(server_properties(data, port, controller_port))
    log4j = data / "log4j2.properties"
    log4j.write_text(LOG4J2_PROPERTIES)
    java = ["java", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]
    log = paths.logs / "kafka.log"
    if not formatted:
        subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id(), "-c", str(props)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    # The client JIT compiler only (C1): a fresh broker spent ~9 CPU-s more compiling with C2
    # while the operator benchmark created a thousand topics, and 2.8 against 1.0 CPU-s for
    # 300,000 1 KB records in and out — on two cores the compiler competes with everything
    # else; the peak speed C2 reaches later is more than tests and the demo ever ask for.
    jvm = ["-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1"]
    return spawn("kafka", [*java, *jvm, "kafka.Kafka", str(props)], log)


def wait_ready(bootstrap: str, record: ProcessRecord, timeout: float = 90) -> None:
    """Poll until the broker answers a metadata request (an AdminClient describe)."""
    from confluent_kafka.admin import AdminClient

    def answers() -> bool:
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
        md = admin.list_topics(timeout=2)
        return len(md.brokers) > 0

    wait_until("kafka", answers, timeout, alive=record.is_alive, log=record.log)
