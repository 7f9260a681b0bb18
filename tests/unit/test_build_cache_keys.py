"""Build caches are keyed by the content that produces them, and every version lives in one file.

An edit of the OCI runtime wrapper's source must build a new srs-runc on the next
``srs kind up`` (issue 23); an edit of a build script must build its binaries again; the
Kafka POM, the build scripts and the GitHub workflow take their versions from
``devstack/settings.py``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from devstack import gobuild, keda, kind, settings
from devstack.images import CONTAINERS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_an_edit_of_the_runtime_wrapper_source_names_a_new_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "ociwrapper"
    shutil.copytree(CONTAINERS / "ociwrapper", source)
    built: list[Path] = []

    def fake_go_build(*args: object, cwd: Path, **_: object) -> None:
        out = Path(str(args[0][args[0].index("-o") + 1]))  # type: ignore[index]
        out.write_bytes((cwd / "main.go").read_bytes())  # a "binary" that is its source
        built.append(out)

    monkeypatch.setattr(gobuild.shutil, "which", lambda _: "/usr/bin/go")
    monkeypatch.setattr(gobuild.subprocess, "run", fake_go_build)
    first = gobuild.build_go_binary(source, tmp_path / "cache", "srs-runc", what="srs-runc")
    assert gobuild.build_go_binary(source, tmp_path / "cache", "srs-runc", what="srs-runc") == first
    assert len(built) == 1  # unchanged source: built once

    (source / "main.go").write_text((source / "main.go").read_text() + "\n// an edit\n")
    second = gobuild.build_go_binary(source, tmp_path / "cache", "srs-runc", what="srs-runc")
    assert second != first and len(built) == 2

    # srs kind up puts the new binary beside the node's others (the node image's digest covers it).
    monkeypatch.setattr(kind, "build_go_binary", lambda src, cache, name, **_: second if name == "srs-runc" else first)
    node_bins = tmp_path / "kind-bins"
    kind._ensure_own_programs(settings.Paths(cache=tmp_path / "cache", state=tmp_path), node_bins)
    assert (node_bins / "srs-runc").read_bytes() == second.read_bytes()


def test_cached_builds_are_named_by_their_recipe(tmp_path: Path) -> None:
    paths = settings.Paths(cache=tmp_path, state=tmp_path)
    assert paths.go_bins.name.endswith(settings.recipe_digest(*settings.GO_BINS_RECIPE))
    assert settings.kind_bins(paths).name.endswith(settings.recipe_digest(*settings.KIND_BINS_RECIPE))
    assert paths.kafka_libs.parent.name.endswith(settings.recipe_digest(*settings.KAFKA_RECIPE))
    assert paths.tofu_bin.parent.name.endswith(settings.recipe_digest(*settings.TOFU_RECIPE))
    assert keda.binary_dir(paths).name.endswith(settings.recipe_digest(*settings.KEDA_RECIPE))
    # Every Go build script is part of the recipe of what it builds.
    recipes = {
        *settings.GO_BINS_RECIPE, *settings.KIND_BINS_RECIPE, *settings.TOFU_RECIPE, *settings.ARGOCD_RECIPE,
        *settings.JAEGER_RECIPE, *settings.LLAMA_SERVER_RECIPE, *settings.KEDA_RECIPE,
    }  # fmt: skip
    assert {f"scripts/{p.name}" for p in (ROOT / "devstack" / "scripts").glob("*.sh")} <= recipes


def test_versions_are_written_only_in_settings() -> None:
    versions = [
        settings.KAFKA_VERSION, settings.LOG4J_VERSION, settings.KUBERNETES_VERSION, settings.KIND_VERSION,
        settings.KEDA_VERSION,
    ]  # fmt: skip
    for path in (
        ROOT / "devstack" / "kafka" / "pom.xml",
        ROOT / ".github" / "workflows" / "ci.yml",
        *(ROOT / "devstack" / "scripts").glob("*.sh"),
    ):
        text = path.read_text()
        assert [v for v in versions if v in text] == [], f"{path.name} names a version settings.py owns"
        assert not re.search(r"kindest/node:v\d", text), f"{path.name} names kind's node image version"
