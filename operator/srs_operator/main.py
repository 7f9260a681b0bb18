"""The operator process: kopf settings, credentials, the handler modules, and running.

``srs operator`` calls :func:`run`. Importing this module registers every handler (the
SupportAgent and TicketTopic controllers, the shared topic-usage indexes, the liveness
probes) with kopf's default registry; nothing else in the package registers handlers as
an import side effect that tests could trip over.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from srs_contracts import traces
from srs_operator import kopf_patches, metrics
from srs_operator.clients.kube import CLUSTER_PEERINGS, ApiError, KubeClient, login
from srs_operator.handlers import supportagent as supportagent_handlers
from srs_operator.handlers import tickettopic as tickettopic_handlers
from srs_operator.handlers import topic_usage as topic_usage_handlers
from srs_operator.handlers import watching
from srs_operator.liveness import HandlingLag
from srs_operator.settings import (
    ANNOTATION_PREFIX,
    KOPF_FINALIZER,
    PEERING_NAME,
    SETTINGS_MEMO_KEY,
    OperatorSettings,
)

HANDLER_MODULES = (watching, topic_usage_handlers, supportagent_handlers, tickettopic_handlers)

log = logging.getLogger(__name__)


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's "last handled" state of an object, never built.

    kopf builds it (a deep copy of the object) for every watch event, to tell creations and
    updates apart for ``on.create``/``on.update``/``on.resume``/``on.delete`` handlers and
    daemons. srs has none of those (its controllers reconcile from indexes; a unit test keeps
    it so): the copies were a tenth of the operator's CPU at a thousand agents. Nothing is
    stored either: kopf stores it only after running such handlers."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Names under ``srs.dev``, bounded watches, bounded concurrency. (kopf watches only the
    custom kinds; the operator's informers watch children, pods and ConfigMaps.)"""
    ours: OperatorSettings = memo.get(SETTINGS_MEMO_KEY) or OperatorSettings.from_env()
    # The controllers keep their own finalizer (srs.dev/finalizer, TicketTopics with
    # deletionPolicy Delete); kopf removes *its* finalizer from every object no kopf handler
    # needs it for — i.e. from all of them — so its name must differ from ours.
    settings.persistence.finalizer = KOPF_FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase(prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    # Watches are re-established every ~5 minutes (server side), and a stuck connection
    # is dropped by the client shortly after; a lost event is therefore bounded in time.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 30
    # The operator posts its own Events on meaningful transitions; kopf's own go out
    # only for warnings and errors (e.g. a handler that keeps failing).
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "srs-operator"
    settings.peering.name = PEERING_NAME
    # kopf runs one worker per object with events, with no bound on how many (its default):
    # on the first listing each worker waits, holding its place, until every listed object
    # is indexed, so a bound below the objects of one listing left the rest waiting behind
    # them (20 s, until kopf_patches' watchdog). The handlers only index and name a key, so
    # a thousand workers at once cost little (a thousand TicketTopics at once: ~125 MB RSS).
    # Idle workers leave after a second.
    settings.queueing.idle_timeout = 1.0
    memo[watching.LAG_MEMO_KEY] = HandlingLag(ours.watch_stall_seconds)


@kopf.on.startup()
async def ensure_cluster_peering(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Cluster-wide peering needs its ClusterKopfPeering object; kopf does not create it."""
    if settings.peering.standalone or not settings.peering.clusterwide:
        return
    kube = KubeClient(login())
    try:
        if await kube.get(CLUSTER_PEERINGS, None, settings.peering.name) is None:
            body = {
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": settings.peering.name},
            }
            await kube.create(CLUSTER_PEERINGS, None, body)
            log.info("created ClusterKopfPeering %s", settings.peering.name)
    except ApiError as e:
        if e.status != 409:
            raise kopf.PermanentError(f"cannot set up peering {settings.peering.name}: {e}") from e
    finally:
        await kube.close()


@kopf.on.login()
async def credentials(**_: Any) -> kopf.ConnectionInfo:
    """In-cluster ServiceAccount, else ``$KUBECONFIG`` (the same as the operator's own client)."""
    return login()


def run(settings: OperatorSettings) -> int:
    """Run the operator until SIGINT/SIGTERM."""
    metrics.serve(settings.metrics_port)
    traces.configure("srs-operator")  # OTEL_* environment; off when unset
    log.info(
        "srs operator: %s, metrics on :%d, liveness %s",
        f"peering {PEERING_NAME}" if settings.peering else "standalone",
        settings.metrics_port,
        settings.liveness_endpoint or "off",
    )
    memo = kopf.Memo()
    memo[SETTINGS_MEMO_KEY] = settings
    # Watched namespaces come and go: without these patches kopf can go deaf to one that
    # vanishes during its initial listing, or that appears while kopf starts its namespace
    # watch or just as a watch stream ends (srs_operator.kopf_patches explains each).
    kopf_patches.apply()
    asyncio.run(
        kopf.operator(
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            standalone=not settings.peering,
            peering_name=PEERING_NAME if settings.peering else None,
            priority=settings.priority,
            liveness_endpoint=settings.liveness_endpoint,
            memo=memo,
        )
    )
    traces.shutdown()
    return 0
