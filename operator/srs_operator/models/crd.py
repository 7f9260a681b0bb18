"""How a custom resource kind is declared: models + names + printer columns + rules.

A kind is one small, frozen :class:`CustomResourceKind` next to its pydantic models (see
``models/supportagent.py``); :mod:`srs_operator.crdgen` turns it into an apiextensions/v1
CustomResourceDefinition. Nothing here does I/O or knows about kopf.

CEL rules that concern one object of the schema live on its model, through
:func:`validations` in ``model_config`` or a field's ``json_schema_extra``; rules on the
whole resource (``metadata.name``) go into ``CustomResourceKind.root_rules``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from srs_contracts.agent_config import API_VERSION as RUNTIME_API_VERSION

#: The API group/version of every srs kind, defined once: in the runtime's config contract
#: (the document the operator renders carries the same apiVersion).
API_VERSION: Final = RUNTIME_API_VERSION
GROUP: Final = API_VERSION.partition("/")[0]
VERSION: Final = API_VERSION.partition("/")[2]
#: ``kubectl get srs`` lists every kind of the project.
CATEGORY: Final = "srs"

#: Reasons the API server accepts for a CEL rule (``x-kubernetes-validations[].reason``).
RuleReason = Literal["FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden", "FieldValueDuplicate"]


class ResourceModel(BaseModel):
    """Base of every spec/status model: camelCase on the wire, snake_case in Python, and
    unknown fields are an error (the API server prunes them, so seeing one is a bug)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


@dataclass(frozen=True)
class Rule:
    """One CEL rule (``x-kubernetes-validations`` entry); ``message`` is what a person sees
    when the API server rejects the object, so say what to do, not only what is wrong."""

    rule: str
    message: str
    field_path: str | None = None
    reason: RuleReason | None = None

    def to_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def validations(*rules: Rule) -> dict[str, Any]:
    """``json_schema_extra`` that attaches CEL rules to a model or a field."""
    return {"x-kubernetes-validations": [r.to_schema() for r in rules]}


@dataclass(frozen=True)
class PrinterColumn:
    """An ``additionalPrinterColumns`` entry (``kubectl get`` output)."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0  # 1 = shown only with ``-o wide``

    def to_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


@dataclass(frozen=True)
class ScaleSubresource:
    """Paths of the ``scale`` subresource (``kubectl scale``, HorizontalPodAutoscaler)."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = ".status.selector"

    def to_schema(self) -> dict[str, Any]:
        out = {"specReplicasPath": self.spec_replicas_path, "statusReplicasPath": self.status_replicas_path}
        if self.label_selector_path is not None:
            out["labelSelectorPath"] = self.label_selector_path
        return out


@dataclass(frozen=True)
class CustomResourceKind:
    """Everything needed to generate one CRD (namespaced, in ``srs.dev/v1alpha1``)."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    printer_columns: tuple[PrinterColumn, ...] = ()
    root_rules: tuple[Rule, ...] = ()
    scale: ScaleSubresource | None = None
    #: Bound on ``metadata.name`` (the API server allows schema restrictions on the name only).
    max_name_length: int | None = None
    categories: tuple[str, ...] = (CATEGORY,)
    group: str = GROUP
    version: str = VERSION

    @property
    def crd_name(self) -> str:
        """``metadata.name`` of the CRD, e.g. ``supportagents.srs.dev``."""
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"
