"""Which Secrets exist, and at which version, in the namespaces whose agents use them.

Least privilege: the operator has no cluster-wide right on Secrets at all. It reads them
only in namespaces where it was granted the ``srs-operator-secrets`` ClusterRole by a
RoleBinding, and even there only their *metadata*: lists and watches ask the API server
for ``PartialObjectMetadata``, so no Secret value ever reaches the operator. That is
enough for what it needs: whether a referenced Secret exists, and its ``uid`` and
``resourceVersion`` (a rotation changes the version, and the config hash with it).

One list-then-watch loop per namespace, started the first time a reconcile asks about
that namespace, re-listing when the watch ends or expires. Without the RoleBinding the
loop reports :class:`SecretsForbidden` and keeps trying every ``retry_forbidden``
seconds, so granting the right later heals the agents without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from srs_contracts.backoff import Backoff
from srs_operator.clients.kube import SECRETS, ApiError, KubeClient
from srs_operator.models.crd import GROUP
from srs_operator.models.supportagent import SUPPORT_AGENT, SecretVersion

log = logging.getLogger(__name__)

METADATA_LIST: Final = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA: Final = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
#: The ClusterRole a RoleBinding grants to the operator in each namespace whose agents use Secrets.
SECRETS_ROLE: Final = "srs-operator-secrets"
#: Retries of a failed list/watch: about 1 s, doubling to 60 s, spread so namespaces do not retry in step.
_RETRY: Final = Backoff(1.0, 60.0)


def grant_command(namespace: str, env: Mapping[str, str] | None = None) -> str:
    """The kubectl command that lets this operator read Secrets in ``namespace``.

    The Helm chart tells the operator who it is (``SRS_OPERATOR_NAMESPACE``,
    ``SRS_OPERATOR_SERVICE_ACCOUNT``, ``SRS_SECRETS_ROLE``: the role's name follows the
    release); elsewhere the names of ``operator/deploy/`` are assumed."""
    env = os.environ if env is None else env
    role = env.get("SRS_SECRETS_ROLE") or SECRETS_ROLE
    home = env.get("SRS_OPERATOR_NAMESPACE") or "srs-system"
    account = env.get("SRS_OPERATOR_SERVICE_ACCOUNT") or "srs-operator"
    return f"kubectl create rolebinding {role} -n {namespace} --clusterrole={role} --serviceaccount={home}:{account}"


#: The ClusterRole that lets the operator write agents' Kafka credentials in a namespace.
CREDENTIALS_ROLE: Final = "srs-operator-kafka-credentials"


def credentials_grant_command(namespace: str, env: Mapping[str, str] | None = None) -> str:
    """The kubectl command that lets this operator write the agents' Kafka credentials
    Secrets in ``namespace`` (the chart passes the role's name in ``SRS_KAFKA_CREDENTIALS_ROLE``)."""
    env = os.environ if env is None else env
    role = env.get("SRS_KAFKA_CREDENTIALS_ROLE") or CREDENTIALS_ROLE
    home = env.get("SRS_OPERATOR_NAMESPACE") or "srs-system"
    account = env.get("SRS_OPERATOR_SERVICE_ACCOUNT") or "srs-operator"
    return f"kubectl create rolebinding {role} -n {namespace} --clusterrole={role} --serviceaccount={home}:{account}"


class SecretsForbidden(Exception):
    """The operator may not read Secrets (metadata) in this namespace."""

    def __init__(self, namespace: str, detail: str) -> None:
        super().__init__(
            f"the operator may not read Secrets in namespace {namespace} ({detail}); grant it with "
            f"`{grant_command(namespace)}`"
        )
        self.namespace = namespace


class _Namespace:
    """The list-then-watch loop of one namespace and what it has seen."""

    def __init__(self) -> None:
        self.versions: dict[str, SecretVersion] = {}
        self.forbidden: SecretsForbidden | None = None
        self.listed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class WatchTimings:
    """How the Secrets watches pace themselves."""

    #: Length of one watch request (the server ends it; the loop starts the next).
    watch_seconds: int = 300
    #: Wait before asking again in a namespace whose Secrets the operator may not read.
    retry_forbidden: float = 30.0
    #: How long a first use of a namespace waits for its first list.
    first_list_timeout: float = 30.0


class SecretVersions:
    """Metadata of Secrets, per namespace, kept current by watches."""

    def __init__(
        self, kube: KubeClient, on_change: Callable[[str, str | None], None], timings: WatchTimings = WatchTimings()
    ) -> None:
        self._kube = kube
        self._on_change = on_change
        self._timings = timings
        self._namespaces: dict[str, _Namespace] = {}

    async def of(self, namespace: str) -> Mapping[str, SecretVersion]:
        """The Secrets of ``namespace`` by name (their metadata only); starts watching the
        namespace on first use. Raises :class:`SecretsForbidden` without the RoleBinding."""
        ns = self._namespaces.get(namespace)
        if ns is None:
            ns = self._namespaces[namespace] = _Namespace()
            ns.task = asyncio.create_task(self._run(namespace, ns), name=f"secrets-watch-{namespace}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ns.listed.wait(), self._timings.first_list_timeout)
        if not ns.listed.is_set():
            raise TimeoutError(f"listing the Secrets of namespace {namespace} takes too long")
        if ns.forbidden is not None:
            raise ns.forbidden
        return ns.versions

    def healthy(self) -> bool:
        return all(ns.task is None or not ns.task.done() for ns in self._namespaces.values())

    async def stop(self) -> None:
        tasks = [ns.task for ns in self._namespaces.values() if ns.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._namespaces.clear()

    async def _run(self, namespace: str, ns: _Namespace) -> None:
        failures = 0
        while True:
            try:
                await self._list_and_watch(namespace, ns)
                failures = 0
                await asyncio.sleep(_RETRY.initial_s)  # a watch that ends at once must not spin
                continue
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.status in (401, 403):
                    first = ns.forbidden is None
                    ns.forbidden = SecretsForbidden(namespace, f"{e.status} {e.reason}")
                    ns.listed.set()
                    if first:
                        log.warning("%s", ns.forbidden)
                        self._on_change(namespace, None)
                    await asyncio.sleep(self._timings.retry_forbidden)
                    continue
                error: Exception = e
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                error = e
            failures += 1
            delay = _RETRY.around(failures)
            log.warning("watching the Secrets of namespace %s failed, retrying in %.0fs: %s", namespace, delay, error)
            await asyncio.sleep(delay)

    async def _list_and_watch(self, namespace: str, ns: _Namespace) -> None:
        doc = await self._kube.list(SECRETS, namespace, accept=METADATA_LIST)
        listed = {
            item["metadata"]["name"]: _version(item["metadata"])
            for item in doc.get("items") or ()
            if item.get("metadata", {}).get("name")
        }
        was_forbidden, before = ns.forbidden is not None, ns.versions
        ns.versions, ns.forbidden = listed, None
        ns.listed.set()
        if was_forbidden:
            self._on_change(namespace, None)  # granted meanwhile: every agent there needs a look
        elif before:
            for name in set(before) | set(listed):
                if before.get(name) != listed.get(name):
                    self._on_change(namespace, name)
        version = str((doc.get("metadata") or {}).get("resourceVersion", ""))
        params = {
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self._timings.watch_seconds),
        }
        async for event in self._kube.watch(
            SECRETS, namespace, params, accept=METADATA, timeout=self._timings.watch_seconds + 30
        ):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                return  # e.g. 410 Gone: the version expired; list again
            meta = obj.get("metadata") or {}
            name = meta.get("name")
            if kind == "BOOKMARK" or not name:
                continue
            if kind == "DELETED":
                ns.versions.pop(name, None)
            else:
                ns.versions[name] = _version(meta)
            self._on_change(namespace, name)


def _version(meta: Mapping[str, Any]) -> SecretVersion:
    annotations = meta.get("annotations") or {}
    owner = next(
        (
            str(ref.get("uid"))
            for ref in meta.get("ownerReferences") or ()
            if ref.get("kind") == SUPPORT_AGENT.kind and ref.get("controller")
        ),
        None,
    )
    return SecretVersion(
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        # Only the operator's own notes: other annotations may be large (kubectl's last-applied copy).
        annotations=tuple(sorted((k, str(v)) for k, v in annotations.items() if k.startswith(f"{GROUP}/"))),
        owner_uid=owner,
    )


def version_of(meta: Mapping[str, Any]) -> SecretVersion:
    """A Secret's :class:`SecretVersion` from its metadata (e.g. a write's ``PartialObjectMetadata``)."""
    return _version(meta)
