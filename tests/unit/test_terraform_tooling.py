"""How `make terraform-test` finds OpenTofu and its providers: the offline CLI config, the
mirror layout, the recorded build figures and failures (no build runs here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from devstack import settings, terraform
from devstack.settings import Paths

pytestmark = pytest.mark.unit


def test_the_cli_config_names_the_mirror_and_nothing_on_the_network(tmp_path: Path) -> None:
    text = terraform.write_cli_config(tmp_path / "tofurc", tmp_path / "mirror").read_text()
    assert f'path = "{tmp_path / "mirror"}"' in text
    assert "filesystem_mirror" in text
    for network in ("direct", "network_mirror", "host", "http"):
        assert network not in text


def test_providers_sit_where_tofu_init_looks_for_hashicorp_sources(tmp_path: Path) -> None:
    path = terraform.provider_binary(tmp_path, "helm", "1.3.2")
    assert path.relative_to(tmp_path).parts == (
        "registry.opentofu.org", "hashicorp", "helm", "1.3.2", "linux_amd64", "terraform-provider-helm_v1.3.2",
    )  # fmt: skip


def test_a_recorded_build_failure_is_reported_without_building_again(tmp_path: Path) -> None:
    paths = Paths(cache=tmp_path, state=tmp_path / "state")
    name, version = next(iter(settings.TOFU_PROVIDERS.items()))
    paths.tofu_mirror.mkdir(parents=True)
    (paths.tofu_mirror / f"{name}-{version}.failed").write_text("build failed: bash build-terraform.sh …\nboom\n")
    said: list[str] = []
    found = terraform._ensure_provider(paths.tofu_mirror, name, version, said.append)
    assert not found.usable and found.problem is not None and "boom" in found.problem
    assert said == []  # nothing was built


def test_build_figures_come_from_the_time_reports(tmp_path: Path) -> None:
    paths = Paths(cache=tmp_path, state=tmp_path / "state")
    paths.tofu_bin.parent.mkdir(parents=True)
    (paths.tofu_bin.parent / "build-stats.txt").write_text(
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 8:38.47\n\tMaximum resident set size (kbytes): 1799524\n"
    )
    assert terraform.build_stats(paths) == {f"tofu {settings.TOFU_VERSION}": ("8:38.47", 1757)}


def test_a_provider_is_usable_only_when_built_and_speaking_a_tofu_protocol() -> None:
    ok = terraform.Provider("helm", "1.3.2", Path("/x"), 5)
    assert ok.usable
    assert not dataclasses.replace(ok, problem="speaks plugin protocol 4").usable
    assert not dataclasses.replace(ok, binary=None).usable
