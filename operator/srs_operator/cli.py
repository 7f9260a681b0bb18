"""``srs operator`` (run the operator) and ``srs crds`` (print or write the CRDs)."""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

from srs_operator.settings import SECURITY_PROTOCOLS, OperatorSettings


def register(sub: Any) -> None:
    """Add the operator's subcommands to the ``srs`` parser."""
    defaults = OperatorSettings.from_env()
    op = sub.add_parser(
        "operator",
        help="run the operator (SupportAgent and TicketTopic controllers) against $KUBECONFIG",
        description="Run the kopf operator that reconciles SupportAgents and TicketTopics. Credentials: the "
        "in-cluster ServiceAccount, else $KUBECONFIG. Kafka: $KAFKA_BOOTSTRAP_SERVERS (+ KAFKA_* settings: the "
        "operator's own identity, which manages topics and, with --kafka-manage-users, the agents' users and ACLs).",
    )
    op.add_argument("--agent-image", default=defaults.agent_image, help="default agent image (env SRS_AGENT_IMAGE)")
    op.add_argument(
        "--agent-kafka-bootstrap-servers",
        default=defaults.agent_kafka_bootstrap_servers,
        help="bootstrap servers written into every agent's config (env SRS_AGENT_KAFKA_BOOTSTRAP_SERVERS, "
        "else KAFKA_BOOTSTRAP_SERVERS)",
    )
    kafka = defaults.agent_kafka
    op.add_argument(
        "--agent-kafka-security-protocol",
        choices=SECURITY_PROTOCOLS,
        default=kafka.security_protocol,
        help="how agents connect to Kafka (env SRS_AGENT_KAFKA_SECURITY_PROTOCOL; default PLAINTEXT): their pods "
        "get KAFKA_SECURITY_PROTOCOL",
    )
    op.add_argument(
        "--agent-kafka-sasl-mechanism",
        default=kafka.sasl_mechanism,
        metavar="MECHANISM",
        help="the agents' SASL mechanism with SASL_SSL/SASL_PLAINTEXT (env SRS_AGENT_KAFKA_SASL_MECHANISM; "
        "default SCRAM-SHA-512)",
    )
    op.add_argument(
        "--agent-kafka-ca-file",
        default=kafka.ca_file,
        metavar="PEM",
        help="CA of the brokers' certificates, given to every agent (env SRS_AGENT_KAFKA_CA_FILE; default: the "
        "system's trust store)",
    )
    op.add_argument(
        "--kafka-manage-users",
        action=argparse.BooleanOptionalAction,
        default=kafka.manage_users,
        help="create a SCRAM user (Secret <agent>-kafka) and least-privilege ACLs for each SupportAgent (env "
        "SRS_KAFKA_MANAGE_USERS; default: on exactly when the agents authenticate with SCRAM)",
    )
    op.add_argument(
        "--kafka-acl-idempotent-write",
        action="store_true",
        default=kafka.idempotent_write_acl,
        help="also grant IDEMPOTENT_WRITE on the cluster to each agent (only brokers before Kafka 3.0 need it; env "
        "SRS_KAFKA_ACL_IDEMPOTENT_WRITE)",
    )
    op.add_argument("--metrics-port", type=int, default=defaults.metrics_port, help="Prometheus /metrics port")
    op.add_argument(
        "--liveness",
        default=defaults.liveness_endpoint,
        metavar="URL",
        help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz ('' to disable)",
    )
    mode = op.add_mutually_exclusive_group()
    mode.add_argument(
        "--standalone",
        action="store_true",
        default=not defaults.peering,
        help="do not join the srs-operator peering (a single replica); env SRS_OPERATOR_STANDALONE=1",
    )
    mode.add_argument("--priority", type=int, default=0, help="peering priority: the highest one is active")
    op.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch only this namespace (repeatable; default: all)"
    )
    op.add_argument("--workers", type=int, default=defaults.workers, help="concurrent SupportAgent reconciles")
    op.add_argument(
        "--watch-stall-seconds",
        type=float,
        default=defaults.watch_stall_seconds,
        help="liveness fails when a watched object waits longer than this for its handler "
        "(env SRS_OPERATOR_WATCH_STALL_SECONDS)",
    )
    op.add_argument(
        "--topic-prefix-rule",
        action="append",
        default=[],
        metavar="GLOB=PREFIX[,PREFIX]",
        help="namespaces matching GLOB may claim only topics starting with a PREFIX ({namespace} stands for the "
        "namespace's name), e.g. '*={namespace}.' (repeatable; also SRS_TOPIC_PREFIX_RULES, ';'-separated). "
        "With rules, a namespace no rule matches may claim no topic.",
    )
    op.add_argument(
        "--resync-seconds", type=float, default=defaults.resync_seconds, help="re-check every agent this often"
    )
    op.add_argument(
        "--recheck-seconds",
        type=float,
        default=defaults.recheck_seconds,
        help="look this often again at a namespace whose Secrets the operator may not read, and for KEDA's "
        "kinds where they are not served (env SRS_OPERATOR_RECHECK_SECONDS)",
    )
    op.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    op.set_defaults(func=_operator)

    crds = sub.add_parser(
        "crds",
        help="print the CustomResourceDefinitions generated from the models",
        description="Print the CRDs (SupportAgent, TicketTopic, kopf peering) as multi-document YAML, "
        "e.g. `srs crds | kubectl apply --server-side -f -`, or write one file per CRD with --write.",
    )
    crds.add_argument("--write", metavar="DIR", type=Path, help="write one file per CRD into DIR (e.g. crds/)")
    crds.set_defaults(func=_crds)


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena; kopf's handler threads and
    librdkafka's threads then keep freed memory apart, so RSS grows with threads, not with
    data. Two arenas keep the operator small; ``MALLOC_ARENA_MAX`` in the environment wins."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc (e.g. musl): nothing to tune
    m_arena_max = -8  # <malloc.h>
    libc.mallopt(m_arena_max, arenas)


def _operator(args: argparse.Namespace) -> int:
    _limit_malloc_arenas()  # before any thread starts
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf logs every handled watch event at INFO; the operator logs what matters itself.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from srs_operator import main

    defaults = OperatorSettings.from_env()
    try:
        agent_kafka = dataclasses.replace(
            defaults.agent_kafka,
            security_protocol=args.agent_kafka_security_protocol,
            sasl_mechanism=args.agent_kafka_sasl_mechanism.upper(),
            ca_file=args.agent_kafka_ca_file or None,
            manage_users=args.kafka_manage_users,
            idempotent_write_acl=args.kafka_acl_idempotent_write,
        ).loaded()
    except ValueError as e:
        print(f"srs operator: {e}", file=sys.stderr)
        return 2
    # Everything else keeps what the environment says (the agents' OTEL_* settings, say).
    settings = dataclasses.replace(
        defaults,
        agent_kafka=agent_kafka,
        agent_image=args.agent_image,
        agent_kafka_bootstrap_servers=args.agent_kafka_bootstrap_servers or None,
        metrics_port=args.metrics_port,
        liveness_endpoint=args.liveness or None,
        peering=not args.standalone,
        priority=args.priority,
        namespaces=tuple(args.namespace),
        resync_seconds=args.resync_seconds,
        recheck_seconds=args.recheck_seconds,
        workers=args.workers,
        watch_stall_seconds=args.watch_stall_seconds,
        topic_prefix_rules=tuple(args.topic_prefix_rule),
    )
    return main.run(settings)


def _crds(args: argparse.Namespace) -> int:
    from srs_operator import crdgen

    if args.write is not None:
        for path in crdgen.write(args.write):
            print(f"srs crds: {path}", file=sys.stderr)
        return 0
    sys.stdout.write(crdgen.to_yaml(crdgen.all_crds()))
    return 0
