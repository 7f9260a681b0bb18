"""One build per cached artefact when several srs processes want it at once.

CI runs ``srs dev build`` in the background beside ``make test``: a test that needs Jaeger
while the background builds it must wait for that build, not start a second one (two Go
builds of the same thing on 2 cores take twice as long, and the second one's rename races
the first's). And a service started by that idle-priority build must not inherit its
priority: dockerd started from it would run every kind node at idle priority.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack import build, cli, locks, observability
from devstack.settings import Paths

pytestmark = pytest.mark.unit


def test_a_second_process_waits_for_the_build_under_way_and_finds_it_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = tmp_path / "builds.log"
    release = tmp_path / "release"
    script = tmp_path / "build-jaeger.sh"
    # Stands in for the Go build: counts its runs, holds until released, then writes the binary.
    script.write_text(
        f'echo run >> {builds}\nwhile [ ! -e {release} ]; do sleep 0.05; done\nmkdir -p "$2" && touch "$2/jaeger"\n'
    )
    monkeypatch.setattr(observability, "BUILD_SCRIPT", script)
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state")
    said: list[str] = []
    found: list[Path] = []

    def want_jaeger() -> None:
        found.append(observability.ensure_jaeger(paths, said.append))

    first = threading.Thread(target=want_jaeger)
    first.start()
    _until(builds.exists, "the first process starts the build")
    second = threading.Thread(target=want_jaeger)
    second.start()
    _until(lambda: any(m.startswith("waiting for Jaeger") for m in said), "the second process says it waits")
    release.touch()
    first.join(30)
    second.join(30)

    assert builds.read_text() == "run\n", "the waiting process must not build Jaeger a second time"
    assert found == [observability.jaeger_binary(paths)] * 2
    assert found[0].is_file()
    waited = next(m for m in said if m.startswith("waiting for Jaeger"))
    assert f"srs process {os.getpid()}" in waited, waited


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"not within 30 s: {what}"
        time.sleep(0.05)


def test_the_lock_is_released_when_its_holder_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from devstack import locks\n"
         "with locks.exclusive(Path(sys.argv[1]), 'part', 'part', print):\n"
         "    print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.kill()
    holder.wait()
    said: list[str] = []
    with locks.exclusive(tmp_path, "part", "part", said.append):
        pass
    assert said == [], "a dead builder's lock must not make anyone wait"


def test_a_service_started_by_an_idle_priority_build_runs_at_normal_priority(tmp_path: Path) -> None:
    script = (
        "import os, sys\nfrom pathlib import Path\nfrom devstack.processes import spawn, stop\n"
        "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
        "record = spawn('sleeper', ['sleep', '30'], Path(sys.argv[1]) / 'sleeper.log')\n"
        "print(os.sched_getscheduler(0), os.sched_getscheduler(record.pid))\n"
        "stop(record)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    starter, service = (int(p) for p in done.stdout.split())
    assert starter == os.SCHED_IDLE
    assert service == os.SCHED_OTHER


def test_a_part_that_fails_does_not_stop_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    def broken(paths: Paths, progress: Callable[[str], None]) -> None:
        raise RuntimeError("no Docker engine answers")

    monkeypatch.setattr(
        build,
        "PARTS",
        {"docker": broken, "llm": lambda paths, progress: ran.append("llm"), "kind": broken},
    )
    said: list[str] = []
    with pytest.raises(RuntimeError, match="building docker, kind failed"):
        build.build(Paths(cache=tmp_path, state=tmp_path), ["docker", "llm", "kind"], said.append)
    assert ran == ["llm"]
    assert "docker: failed: no Docker engine answers" in said


def test_every_part_can_be_asked_for_by_name_on_the_command_line() -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["dev", "build", *(arg for part in build.PARTS for arg in ("--part", part))])
    assert args.parts == list(build.PARTS)


def test_one_stack_up_at_a_time(tmp_path: Path) -> None:
    """``up``, ``down`` and ``reset`` of one stack wait for each other (two ``up`` that both
    found a component dead would both start it on its ports)."""

    from devstack import stack

    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state")
    said: list[str] = []
    with locks.exclusive(paths.state, "up", "the local stack", said.append):
        done = threading.Event()
        other = threading.Thread(target=lambda: (stack.down(paths, quiet=True), done.set()))
        other.start()
        assert not done.wait(1.0), "down ran while another process held the stack"
    other.join(10)
    assert done.is_set()
