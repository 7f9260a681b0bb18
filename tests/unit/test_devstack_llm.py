"""Pure parts of `srs llm`: cache names keyed by version and content, the env file line, the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from devstack import llm, settings
from devstack.processes import ProcessRecord, start_time
from devstack.settings import Paths
from srs.cli import build_parser

pytestmark = pytest.mark.unit


def paths(tmp_path: Path) -> Paths:
    return Paths(cache=tmp_path / "cache", state=tmp_path / "state")


def test_the_server_cache_is_named_by_version_and_changes_with_the_build_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = llm.server_dir(paths(tmp_path))
    assert first.name.startswith(f"llama-server-{settings.LLAMA_CPP_PYTHON_VERSION}-")
    assert llm.server_dir(paths(tmp_path)) == first, "the key is stable"
    edited = tmp_path / "build-llama-server.sh"
    edited.write_bytes(llm.BUILD_SCRIPT.read_bytes() + b"\n# one more flag\n")
    monkeypatch.setattr(llm, "BUILD_SCRIPT", edited)
    assert llm.server_dir(paths(tmp_path)) != first, "an edited recipe builds afresh"
    monkeypatch.setattr(settings, "LLAMA_CPP_PYTHON_SDIST_SHA256", "0" * 64)
    monkeypatch.setattr(llm, "BUILD_SCRIPT", llm.HERE / "scripts" / "build-llama-server.sh")
    assert llm.server_dir(paths(tmp_path)) != first, "another source package builds afresh"


def test_the_model_cache_is_named_by_package_version_and_hash(tmp_path: Path) -> None:
    model = llm.model_file(paths(tmp_path))
    assert model.name == "model.gguf"
    assert model.parent.name.startswith(f"llm-model-{settings.LLM_MODEL_PACKAGE}-{settings.LLM_MODEL_VERSION}-")


def test_the_env_file_gets_the_base_url_while_the_server_runs_and_keeps_the_rest(tmp_path: Path) -> None:
    p = paths(tmp_path)
    p.state.mkdir(parents=True)
    p.env_file.write_text("export KUBECONFIG=/x\nexport SRS_LLM_BASE_URL=http://127.0.0.1:1/v1\n")
    llm.refresh_env(p)  # nothing runs: the stale line goes
    assert p.env_file.read_text() == "export KUBECONFIG=/x\n"
    # This test's own process stands in for a running server (same pid, same start time).
    alive = ProcessRecord("llm-server", os.getpid(), start_time(os.getpid()) or 0, "")
    state = llm.LlmState(port=4321, parallel=4, threads=2, model="gemma3-270m", process=alive)
    (p.state / "llm.json").write_text(json.dumps(state.to_json()))
    llm.refresh_env(p)
    assert p.env_file.read_text() == "export KUBECONFIG=/x\nexport SRS_LLM_BASE_URL=http://127.0.0.1:4321/v1\n"
    assert state.base_url.endswith("/v1")


def test_srs_llm_has_help_and_its_three_actions() -> None:
    parser = build_parser()
    args = parser.parse_args(["llm", "up", "--parallel", "2", "--threads", "1"])
    assert (args.action, args.parallel, args.threads) == ("up", 2, 1)
    for action in ("down", "status"):
        assert parser.parse_args(["llm", action]).action == action
    with pytest.raises(SystemExit):
        parser.parse_args(["llm", "restart"])


def test_a_missing_compiler_is_named_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(llm.LlmError, match="cmake, c\\+\\+, make"):
        llm.check_tools()


def test_the_server_is_built_for_a_fixed_cpu_level_and_a_cpu_without_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # -march=native once compiled AMX tiles in on a VM that advertised them and could not run
    # them (SIGILL at start-up): the recipe pins the level instead.
    script = llm.BUILD_SCRIPT.read_text()
    assert "-DGGML_NATIVE=OFF" in script and "-DGGML_AMX_TILE=OFF" in script and "-DGGML_AVX512=OFF" in script
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx f16c fma bmi2 amx_tile avx512f\n")
    assert llm.missing_cpu_flags(cpuinfo) == ["avx2"]
    cpuinfo.write_text("flags\t\t: fpu sse4_2 avx avx2 f16c fma bmi1 bmi2\n")
    assert llm.missing_cpu_flags(cpuinfo) == []

    monkeypatch.setattr(llm, "missing_cpu_flags", lambda: ["avx2", "fma"])
    monkeypatch.setattr(llm.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(llm, "running", lambda _paths: None)
    with pytest.raises(llm.LlmError, match="this CPU lacks avx2, fma: llama-server is built for x86-64-v3"):
        llm.up(paths(tmp_path))
