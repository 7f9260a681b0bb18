"""Kubernetes Events about custom resources (``kubectl describe`` shows them).

Posted only on meaningful transitions (the caller decides), so a quiet cluster sees no
Events from the operator. Messages come from the operator's own words and object names,
never from Secret data.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Final, Literal

from srs_contracts.timestamps import rfc3339
from srs_operator.clients.kube import KubeClient

COMPONENT: Final = "srs-operator"
_MAX_MESSAGE: Final = 1024

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class ObjectRef:
    """The object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


class EventRecorder:
    """Posts core/v1 Events through the operator's client (best effort)."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()

    async def post(self, obj: ObjectRef, type_: EventType, reason: str, message: str) -> None:
        now = rfc3339(timespec="seconds")
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{obj.name}.", "namespace": obj.namespace},
            "involvedObject": {
                "apiVersion": obj.api_version,
                "kind": obj.kind,
                "namespace": obj.namespace,
                "name": obj.name,
                "uid": obj.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:_MAX_MESSAGE],
            "source": {"component": COMPONENT},
            "reportingComponent": f"srs.dev/{COMPONENT}",
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._kube.create_event(event)
