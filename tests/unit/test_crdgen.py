"""The CRDs in ``crds/`` are what the pydantic models generate, and they are structural."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from srs_operator import crdgen
from srs_operator.models.crd import ResourceModel

pytestmark = pytest.mark.unit

CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"


def test_checked_in_crds_match_the_models() -> None:
    expected = crdgen.rendered_files()
    on_disk = {p.name: p.read_text() for p in CRDS_DIR.glob("*.yaml")}
    stale = sorted(set(on_disk) - set(expected))
    missing = sorted(set(expected) - set(on_disk))
    differ = sorted(n for n in expected if n in on_disk and on_disk[n] != expected[n])
    assert not (stale or missing or differ), (
        f"crds/ is out of date (stale {stale}, missing {missing}, differ {differ}): run `make crds`"
    )


def test_srs_crds_prints_every_crd(capsys: pytest.CaptureFixture[str]) -> None:
    from srs.cli import main

    assert main(["crds"]) == 0
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert names == [
        "supportagents.srs.dev",
        "tickettopics.srs.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ]


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_every_schema_node_is_typed_and_every_field_is_explained(kind: Any) -> None:
    root = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _nodes(root):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        assert node.get("additionalProperties") is not False, f"{path}: additionalProperties false is not structural"
        assert not {"anyOf", "oneOf", "allOf", "$ref", "title"} & set(node), f"{path} is not structural"
        if path.startswith((".spec.", ".status.")) and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description for kubectl explain"


def test_supportagent_crd_has_names_scale_and_columns() -> None:
    doc = crdgen.crd(crdgen.SUPPORT_AGENT)
    names = doc["spec"]["names"]
    assert (names["plural"], names["shortNames"], names["categories"]) == ("supportagents", ["sagent"], ["srs"])
    version = doc["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == [
        "Role",
        "Specialty",
        "Provider",
        "Model",
        "Ready",
        "Status",
        "Applied",
        "Current",
        "Desired",
        "Scaling",
        "Input",
        "Age",
    ]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["replicas"]["default"] == 1  # the scale subresource needs a value to read
    assert spec["properties"]["routes"]["x-kubernetes-validations"]


class _Inner(ResourceModel):
    """Inner docstring."""

    some_value: int = Field(3, gt=0, description="A value.")


class _Outer(ResourceModel):
    """Outer."""

    inner: _Inner | None = Field(None, description="The inner one.")
    base_url: str | None = Field(None, alias="baseURL", description="Aliases win over camelCase.")


def test_structural_schema_inlines_refs_and_translates_json_schema_2020() -> None:
    schema = crdgen.structural_schema(_Outer)
    assert schema["description"] == "Outer."
    inner = schema["properties"]["inner"]
    assert inner["description"] == "The inner one."  # the field's words, not the class docstring
    assert inner["properties"]["someValue"] == {
        "description": "A value.",
        "type": "integer",
        "default": 3,
        "exclusiveMinimum": True,
        "minimum": 0,
    }
    assert "baseURL" in schema["properties"]
    assert "required" not in schema  # optionals are simply absent


class _Union(BaseModel):
    value: int | list[str] = Field(description="Not structural.")


class _FreeForm(BaseModel):
    value: dict[str, Any] = Field(description="Anything goes.")


@pytest.mark.parametrize("model", [_Union, _FreeForm])
def test_constructs_without_a_structural_equivalent_are_refused(model: type[BaseModel]) -> None:
    with pytest.raises(crdgen.SchemaError):
        crdgen.structural_schema(model)
