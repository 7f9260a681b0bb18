"""Argo CD next to the local stack: built from the Go module proxy, run as plain processes.

Argo CD's application controller and repo server are one binary (``argocd``, which acts
as the component it is called as); they keep their cache in Redis (``redis-server``, the
Debian package) and read Applications from the cluster they deploy to. Git repositories
are served on loopback by ``git daemon`` (``git://127.0.0.1:PORT/NAME``). Nothing here
touches the cluster: :class:`LocalArgoCD` only starts and stops the processes; what
Argo CD needs in the cluster (its CRDs, ``argocd-cm``, the ``default`` AppProject) is the
caller's to create.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack import apt, locks, settings
from devstack.processes import ProcessRecord, free_port, spawn, stop, tail, wait_until
from devstack.settings import Paths

BUILD_SCRIPT = Path(__file__).parent / "scripts" / "build-argocd.sh"
MODULE = "github.com/argoproj/argo-cd/v3"


def binary_dir(paths: Paths) -> Path:
    return paths.cache / (
        f"argocd-{settings.ARGOCD_VERSION}-{settings.ARGOCD_GO_TOOLCHAIN}-{settings.recipe_digest(*settings.ARGOCD_RECIPE)}"
    )


def ensure_binary(paths: Paths, progress: Callable[[str], None]) -> Path:
    """``argocd``, built into the cache on first use (~15-25 min on 2 cores)."""
    out = binary_dir(paths)
    exe = out / "argocd"
    if exe.is_file() and (out / "git-verify-wrapper.sh").is_file():
        return exe
    with locks.exclusive(paths.cache, out.name, f"Argo CD {settings.ARGOCD_VERSION}", progress):
        if exe.is_file() and (out / "git-verify-wrapper.sh").is_file():
            return exe
        progress(
            f"building Argo CD {settings.ARGOCD_VERSION} from Go sources into {out} "
            "(first run only, ~15-25 min on 2 cores)"
        )
        subprocess.run(
            ["bash", str(BUILD_SCRIPT), str(out), settings.ARGOCD_VERSION, settings.ARGOCD_GO_TOOLCHAIN], check=True
        )
    return exe


def ensure_redis(progress: Callable[[str], None]) -> None:
    """``redis-server`` from Debian, installed on first use when running as root (as on the
    development machines and CI); otherwise a clear error naming the package."""
    if shutil.which("redis-server") is not None:
        return
    apt.install(["redis-server"], progress)


def crd_files() -> list[Path]:
    """Argo CD's CRDs (Application, AppProject, ApplicationSet) from its module source."""
    env = {**os.environ, "GOTOOLCHAIN": settings.ARGOCD_GO_TOOLCHAIN, "GOFLAGS": "-mod=mod"}
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@{settings.ARGOCD_VERSION}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    crds = Path(json.loads(out.stdout)["Dir"]) / "manifests" / "crds"
    return sorted(p for p in crds.glob("*-crd.yaml"))


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LocalArgoCD:
    """Redis, ``git daemon``, the repo server and the application controller, watching
    Applications in ``namespace`` of the cluster ``kubeconfig`` points at."""

    exe: Path
    kubeconfig: str
    namespace: str
    state: Path
    git_root: Path = field(init=False)
    git_port: int = field(init=False, default=0)
    processes: list[ProcessRecord] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.git_root = self.state / "git"

    def repo_url(self, name: str) -> str:
        """The URL Argo CD clones the bare repository ``git_root/name`` from."""
        return f"git://127.0.0.1:{self.git_port}/{name}"

    def start(self) -> None:
        for tool in ("redis-server", "git"):
            if shutil.which(tool) is None:
                raise RuntimeError(
                    f"Argo CD on the local stack needs {tool} (Debian: apt-get install redis-server git)"
                )
        self.git_root.mkdir(parents=True, exist_ok=True)
        logs = self.state / "logs"
        redis_port, repo_port = free_port(), free_port()
        self.git_port = free_port()
        self._start(
            "redis",
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
            logs,
            redis_port,
        )
        git = ["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", f"--port={self.git_port}"]
        self._start("git-daemon", [*git, f"--base-path={self.git_root}", str(self.git_root)], logs, self.git_port)
        env = {
            **os.environ,
            "TMPDIR": str(self._dir("tmp")),  # where the repo server checks repositories out
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_SSH_DATA_PATH": str(self._dir("ssh")),
            "ARGOCD_TLS_DATA_PATH": str(self._dir("tls")),
            "HOME": str(self._dir("home")),
            "ARGOCD_ASK_PASS_SOCK": str(self.state / "ask-pass.sock"),  # not the shared /tmp default
            "PATH": f"{self.exe.parent}{os.pathsep}{os.environ.get('PATH', '')}",  # git-verify-wrapper.sh
        }
        redis = f"127.0.0.1:{redis_port}"
        repo_server = [
            "--port", str(repo_port), "--metrics-port", str(free_port()), "--redis", redis, "--disable-tls",
            "--client-ca-path", "",
        ]  # fmt: skip
        self._start("argocd-repo-server", repo_server, logs, repo_port, env, as_component=True)
        controller = [
            "--kubeconfig", self.kubeconfig, "--namespace", self.namespace,
            "--repo-server", f"127.0.0.1:{repo_port}", "--repo-server-plaintext", "--redis", redis,
            "--metrics-port", str(controller_port := free_port()),
            "--app-resync", "10", "--status-processors", "2", "--operation-processors", "2",
            # Argo CD 3 keeps resource health in Redis for its API server; in the Application
            # status it is readable with kubectl alone.
            "--persist-resource-health",
        ]  # fmt: skip
        self._start("argocd-application-controller", controller, logs, controller_port, env, as_component=True)

    def _dir(self, name: str) -> Path:
        path = self.state / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _start(
        self,
        name: str,
        argv: list[str],
        logs: Path,
        port: int,
        env: dict[str, str] | None = None,
        as_component: bool = False,
    ) -> None:
        if as_component:  # the argocd binary acts as the component named in ARGOCD_BINARY_NAME
            env = {**(env or os.environ), "ARGOCD_BINARY_NAME": name}
            argv = [str(self.exe), *argv]
        record = spawn(name, argv, logs / f"{name}.log", env)
        self.processes.append(record)
        wait_until(f"{name} on port {port}", lambda: _port_open(port), 60, record.is_alive, record.log)

    def stop(self) -> None:
        for record in reversed(self.processes):
            stop(record)
        self.processes.clear()

    def logs(self) -> str:
        """The tail of every component's log (for a failing test's output)."""
        return "\n".join(f"--- {r.name} ---\n{tail(r.log, 30)}" for r in self.processes)
