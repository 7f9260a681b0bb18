"""Generate apiextensions/v1 CustomResourceDefinitions from the pydantic models.

The models are the single source of truth: ``srs crds`` prints what this module builds,
``make crds`` writes it to ``crds/``, and a unit test fails when the two differ.

Adding a kind: declare a :class:`~srs_operator.models.crd.CustomResourceKind` next to its
models (``models/<kind>.py``) and append it to :data:`KINDS`.

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3 subset.
:func:`structural_schema` bridges the two: it inlines ``$ref``, drops ``null`` branches of
optionals, turns ``const``/numeric ``exclusiveMinimum`` into their OpenAPI spellings and
refuses anything it cannot translate faithfully (so a model change never silently widens
the schema).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel

from srs_operator.models.crd import API_VERSION, CustomResourceKind
from srs_operator.models.supportagent import SUPPORT_AGENT
from srs_operator.models.tickettopic import TICKET_TOPIC

#: Every kind the operator serves, in the order ``srs crds`` prints them.
KINDS: Final[tuple[CustomResourceKind, ...]] = (SUPPORT_AGENT, TICKET_TOPIC)

# Schema keywords copied as they are (already valid in a structural schema).
_PASSTHROUGH: Final = frozenset(
    {
        "type",
        "description",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-map-type",
    }
)
# Keywords of pydantic's output that carry no meaning for the API server.
_DROPPED: Final = frozenset({"title", "format"})
_K8S_FORMATS: Final = frozenset({"int32", "int64", "float", "double", "byte", "date", "date-time", "duration"})


class SchemaError(ValueError):
    """A model uses a JSON Schema construct that has no faithful structural equivalent."""


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (camelCase aliases, descriptions)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, path=model.__name__)


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Inline ``$ref`` (and pydantic's single-element ``allOf`` wrapper); the referring
    node's own keywords (description, default) win over the referenced definition's."""
    node = dict(node)
    if "allOf" in node:
        (only,) = node.pop("allOf")
        node = {**only, **node}
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        if name not in defs:
            raise SchemaError(f"{path}: unknown $ref {name}")
        node = {**_resolve(defs[name], defs, path), **node}
    return node


def _convert(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs, path)
    if "anyOf" in node:
        node = _collapse_any_of(node, defs, path)
    out: dict[str, Any] = {}
    validations: list[dict[str, Any]] = list(node.get("x-kubernetes-validations", []))
    for key, value in node.items():
        if key in ("properties", "items", "additionalProperties", "propertyNames", "x-kubernetes-validations"):
            continue
        if key in _PASSTHROUGH:
            out[key] = copy.deepcopy(value)
        elif key == "default":
            if value is not None:
                out["default"] = copy.deepcopy(value)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "format":
            if value in _K8S_FORMATS:
                out["format"] = value
        elif key in _DROPPED:
            continue
        else:
            raise SchemaError(f"{path}: unsupported JSON Schema keyword {key!r}")
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {k: _convert(v, defs, f"{path}.{k}") for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = _convert(node["items"], defs, f"{path}[]")
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        out["additionalProperties"] = _convert(extra, defs, f"{path}{{}}")
    elif extra is True:
        raise SchemaError(f"{path}: free-form objects are not allowed; model the fields")
    if "propertyNames" in node:
        keys = _resolve(node["propertyNames"], defs, path)
        if "enum" not in keys:
            raise SchemaError(f"{path}: only enum-typed map keys are supported")
        allowed = ", ".join(f"'{k}'" for k in keys["enum"])
        if not any(allowed in v.get("rule", "") for v in validations):
            validations.append(
                {
                    "rule": f"self.all(k, k in [{allowed}])",
                    "message": f"keys must be one of {allowed.replace(chr(39), '')}",
                }
            )
    if validations:
        out["x-kubernetes-validations"] = validations
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{path}: no type")
    return _ordered(out)


# Reading order of a schema node in the YAML: what it is first, then its constraints.
_ORDER: Final = ("description", "type", "format", "enum", "default", "required", "properties", "items")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    first = {k: node[k] for k in _ORDER if k in node}
    return first | {k: node[k] for k in sorted(node) if k not in first}


def _collapse_any_of(node: dict[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    """``X | None`` becomes X (absence means None); ``int | str`` becomes int-or-string."""
    branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
    if len(branches) == 1:
        inner = _resolve(branches[0], defs, path)
        merged = {**inner, **node}
        if "description" not in node and "description" in inner:
            merged["description"] = inner["description"]
        return merged
    types = {b.get("type") for b in branches}
    if types == {"integer", "string"} and node.get("x-kubernetes-int-or-string"):
        return node
    raise SchemaError(f"{path}: unions other than optional and int-or-string are not structural")


def crd(kind: CustomResourceKind) -> dict[str, Any]:
    """The CustomResourceDefinition of ``kind`` as a plain dict."""
    spec_schema = structural_schema(kind.spec)
    status_schema = structural_schema(kind.status)
    # Declaring metadata.name lets root CEL rules point at it (fieldPath .metadata.name).
    name: dict[str, Any] = {"type": "string"}
    if kind.max_name_length is not None:
        name["maxLength"] = kind.max_name_length
    metadata: dict[str, Any] = {"type": "object", "properties": {"name": name}}
    root: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION},
            "kind": {"type": "string", "description": kind.kind},
            "metadata": metadata,
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if kind.root_rules:
        root["x-kubernetes-validations"] = [r.to_schema() for r in kind.root_rules]
    subresources: dict[str, Any] = {"status": {}}
    if kind.scale is not None:
        subresources["scale"] = kind.scale.to_schema()
    version: dict[str, Any] = {
        "name": kind.version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root},
        "subresources": subresources,
    }
    if kind.printer_columns:
        version["additionalPrinterColumns"] = [c.to_schema() for c in kind.printer_columns]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": {"app.kubernetes.io/part-of": "srs"}},
        "spec": {
            "group": kind.group,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "versions": [version],
        },
    }


def kopf_peering_crds() -> list[dict[str, Any]]:
    """kopf's peering CRDs (``KopfPeering``, ``ClusterKopfPeering``): the operator replicas
    use them to elect one active replica. Their schema is kopf's, not ours."""
    out = []
    for kind, scope in (("ClusterKopfPeering", "Cluster"), ("KopfPeering", "Namespaced")):
        plural = kind.lower() + "s"
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.kopf.dev", "labels": {"app.kubernetes.io/part-of": "srs"}},
                "spec": {
                    "group": "kopf.dev",
                    "scope": scope,
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "description": "Operator replicas announce themselves here (kopf peering).",
                                    "properties": {
                                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                                    },
                                }
                            },
                        }
                    ],
                },
            }
        )
    return out


def all_crds() -> list[dict[str, Any]]:
    """Every CRD the operator needs: the srs kinds, then kopf's peering kinds."""
    return [crd(k) for k in KINDS] + kopf_peering_crds()


def to_yaml(documents: Iterable[Mapping[str, Any]]) -> str:
    """Multi-document YAML, stable (insertion) key order."""
    return "---\n".join(yaml.safe_dump(dict(d), sort_keys=False, width=120, allow_unicode=True) for d in documents)


def rendered_files() -> dict[str, str]:
    """File name in ``crds/`` → content, e.g. ``supportagents.srs.dev.yaml``."""
    header = "# Generated from the pydantic models by `srs crds` (make crds). Do not edit.\n"
    return {f"{d['metadata']['name']}.yaml": header + to_yaml([d]) for d in all_crds()}


def write(directory: Path) -> list[Path]:
    """Write every CRD into ``directory`` (unchanged files are left untouched)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = rendered_files()
    written = []
    for name, text in files.items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written
