"""The operator's Kubernetes client for what kopf does not do: server-side apply of child
objects, status patches, reads and Events.

A small asyncio client on aiohttp with raw JSON in and out: no generated models (fast,
small), the same credentials kopf uses (:func:`login`: in-cluster ServiceAccount, else
``$KUBECONFIG``), re-login once on 401. Every request is counted in the operator's
metrics, writes separately, so "steady state makes no writes" can be checked from
outside. Request bodies are never logged (the one Secret the operator writes, an agent's Kafka
credentials, is written with ``accept=METADATA``: its values do not come back either).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import kopf
import orjson

from srs_operator import metrics
from srs_operator.models.crd import API_VERSION
from srs_operator.models.supportagent import SUPPORT_AGENT
from srs_operator.models.tickettopic import TICKET_TOPIC
from srs_operator.settings import FIELD_MANAGER

log = logging.getLogger(__name__)

_READ_VERBS: Final = frozenset({"GET"})
APPLY_CONTENT_TYPE: Final = "application/apply-patch+yaml"
MERGE_PATCH_CONTENT_TYPE: Final = "application/merge-patch+json"


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str, causes: tuple[str, ...] = ()) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.causes = causes
        #: What was refused, when the caller knows ("Service billing"); for status and Events.
        self.subject: str | None = None

    @property
    def namespace_terminating(self) -> bool:
        """The namespace is being deleted: nothing new can be created in it, nor needs to be."""
        return "NamespaceTerminating" in self.causes

    @property
    def namespace_gone(self) -> bool:
        """The object's namespace no longer exists (its objects are gone with it)."""
        return self.status == 404 and self.message.startswith('namespaces "')

    @property
    def transient(self) -> bool:
        """Worth retrying unchanged: conflicts, throttling, server trouble."""
        return self.status in (409, 429) or self.status >= 500


def login(settings: kopf.OperatorSettings | None = None) -> kopf.ConnectionInfo:
    """Credentials the way a pod or a developer has them: in-cluster ServiceAccount first,
    then ``$KUBECONFIG`` (token or client certificate; exec plugins are not supported)."""
    settings = settings or kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError("no in-cluster ServiceAccount and no KUBECONFIG: cannot reach Kubernetes")
    return info


@dataclass(frozen=True)
class ResourceType:
    """Where a kind lives in the API (``apps/v1`` ``deployments``)."""

    api_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [base]
        if self.namespaced and namespace is not None:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)


DEPLOYMENTS: Final = ResourceType("apps/v1", "deployments")
CONFIGMAPS: Final = ResourceType("v1", "configmaps")
SERVICES: Final = ResourceType("v1", "services")
SERVICEACCOUNTS: Final = ResourceType("v1", "serviceaccounts")
SECRETS: Final = ResourceType("v1", "secrets")
PODS: Final = ResourceType("v1", "pods")
EVENTS: Final = ResourceType("v1", "events")
NAMESPACES: Final = ResourceType("v1", "namespaces", namespaced=False)
#: KEDA's: served only where KEDA is installed.
SCALEDOBJECTS: Final = ResourceType("keda.sh/v1alpha1", "scaledobjects")
TRIGGERAUTHENTICATIONS: Final = ResourceType("keda.sh/v1alpha1", "triggerauthentications")
HORIZONTALPODAUTOSCALERS: Final = ResourceType("autoscaling/v2", "horizontalpodautoscalers")
SUPPORTAGENTS: Final = ResourceType(API_VERSION, SUPPORT_AGENT.plural)
TICKETTOPICS: Final = ResourceType(API_VERSION, TICKET_TOPIC.plural)
CLUSTER_PEERINGS: Final = ResourceType("kopf.dev/v1", "clusterkopfpeerings", namespaced=False)

#: kind → resource type, for the child objects the builders produce.
BY_KIND: Final[Mapping[str, ResourceType]] = {
    "Deployment": DEPLOYMENTS,
    "ConfigMap": CONFIGMAPS,
    "Service": SERVICES,
    "ServiceAccount": SERVICEACCOUNTS,
    "ScaledObject": SCALEDOBJECTS,
    "TriggerAuthentication": TRIGGERAUTHENTICATIONS,
    "Secret": SECRETS,
}
#: Ask for an object's metadata only (``PartialObjectMetadata``): what a write of a Secret
#: returns, so that its values never come back to the operator.
METADATA: Final = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


class KubeClient:
    """One aiohttp session to the API server; create in ``on.startup``, close in ``on.cleanup``."""

    def __init__(self, info: kopf.ConnectionInfo, *, timeout: float = 30.0, limit: int = 16) -> None:
        self._info = info
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._relogin_lock = asyncio.Lock()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._info.as_ssl_context(), limit=self._limit)
            headers = {"User-Agent": "srs-operator", **self._info.as_http_headers()}
            self._session = aiohttp.ClientSession(connector=connector, headers=headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        resource: str = "",
    ) -> dict[str, Any]:
        """One request; JSON in and out. Raises :class:`ApiError` on an error status."""
        data = None if body is None else orjson.dumps(body)
        for attempt in (1, 2):
            session = self._open()
            started = time.perf_counter()
            async with session.request(
                method,
                self._info.server.rstrip("/") + path,
                data=data,
                params=params,
                headers={"Content-Type": content_type, "Accept": accept},
                timeout=self._timeout,
            ) as response:
                metrics.API_LATENCY.labels(method).observe(time.perf_counter() - started)
                metrics.API_REQUESTS.labels(method, resource, str(response.status)).inc()
                if method not in _READ_VERBS:
                    metrics.API_WRITES.labels(method, resource).inc()
                if response.status == 401 and attempt == 1:
                    await self._relogin()
                    continue
                raw = await response.read()
                if response.status >= 400:
                    raise _api_error(response.status, raw.decode("utf-8", "replace"))
                return dict(orjson.loads(raw)) if raw else {}
        raise AssertionError("unreachable")  # pragma: no cover

    async def watch(
        self, rtype: ResourceType, namespace: str | None, params: Mapping[str, str], *, accept: str, timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """A watch stream of ``rtype`` in ``namespace``: one decoded event per line until the
        server ends it (``timeoutSeconds``) or nothing arrives for ``timeout`` seconds. Raises
        :class:`ApiError` on an error status."""
        resource = rtype.plural
        session = self._open()
        async with session.get(
            self._info.server.rstrip("/") + rtype.path(namespace),
            params={**params, "watch": "true"},
            headers={"Accept": accept},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout),
        ) as response:
            metrics.API_REQUESTS.labels("WATCH", resource, str(response.status)).inc()
            if response.status == 401:
                await self._relogin()
            if response.status >= 400:
                raise _api_error(response.status, await response.text())
            # Split lines ourselves: aiohttp's line reader refuses lines over 64 KiB, and an
            # object's metadata can be that large (e.g. kubectl's last-applied annotation).
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield dict(orjson.loads(line))

    async def _relogin(self) -> None:
        async with self._relogin_lock:
            log.info("the API server refused the credentials (401); logging in again")
            self._info = login()
            await self.close()

    # -- verbs --------------------------------------------------------------------------

    async def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", rtype.path(namespace, name), resource=rtype.plural)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def delete(self, rtype: ResourceType, namespace: str | None, name: str, *, uid: str) -> None:
        """Delete the object if it still is the one with ``uid`` (a precondition: a 409 when it
        was replaced meanwhile); a 404 (already gone) is fine."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
        try:
            await self.request("DELETE", rtype.path(namespace, name), body=body, resource=rtype.plural)
        except ApiError as e:
            if e.status != 404:
                raise

    async def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        accept: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The list document of ``rtype`` in ``namespace`` (``accept`` may ask for metadata only;
        ``params``: a label selector, a page's ``limit`` and ``continue``)."""
        return await self.request("GET", rtype.path(namespace), params=params, accept=accept, resource=rtype.plural)

    async def create(self, rtype: ResourceType, namespace: str | None, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new object; an existing one is an :class:`ApiError` with status 409."""
        return await self.request("POST", rtype.path(namespace), body=obj, resource=rtype.plural)

    async def merge_patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        accept: str = "application/json",
    ) -> dict[str, Any]:
        """JSON merge patch of the object itself (not its status); returns the live object. A
        ``metadata.resourceVersion`` in ``patch`` makes it conditional (409 when it moved)."""
        return await self.request(
            "PATCH",
            rtype.path(namespace, name),
            body=patch,
            content_type=MERGE_PATCH_CONTENT_TYPE,
            accept=accept,
            resource=rtype.plural,
        )

    async def apply(
        self, obj: Mapping[str, Any], *, force: bool = True, accept: str = "application/json"
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` as the operator's field manager; returns the live object
        (only its metadata with ``accept=METADATA``)."""
        rtype = BY_KIND[obj["kind"]]
        meta = obj["metadata"]
        return await self.request(
            "PATCH",
            rtype.path(meta.get("namespace"), meta["name"]),
            body=obj,
            params={"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"},
            content_type=APPLY_CONTENT_TYPE,
            accept=accept,
            resource=rtype.plural,
        )

    async def patch_status(
        self, rtype: ResourceType, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch of the status subresource; returns the live object."""
        return await self.request(
            "PATCH",
            rtype.path(namespace, name, "status"),
            body={"status": status},
            params={"fieldManager": FIELD_MANAGER},
            content_type=MERGE_PATCH_CONTENT_TYPE,
            resource=f"{rtype.plural}/status",
        )

    async def create_event(self, event: Mapping[str, Any]) -> None:
        """Post a core/v1 Event; failures are logged, never raised (Events are best effort)."""
        try:
            await self.request("POST", EVENTS.path(event["metadata"]["namespace"]), body=event, resource="events")
        except (ApiError, aiohttp.ClientError, TimeoutError) as e:
            log.warning("could not post Event %s: %s", event.get("reason"), e)


def _api_error(status: int, text: str) -> ApiError:
    try:
        doc = json.loads(text)
    except ValueError:
        return ApiError(status, "Unknown", text[:500])
    if not isinstance(doc, dict):
        return ApiError(status, "Unknown", text[:500])
    causes = tuple(str(c.get("reason", "")) for c in (doc.get("details") or {}).get("causes") or ())
    return ApiError(status, str(doc.get("reason", "Unknown")), str(doc.get("message", ""))[:2000], causes)
