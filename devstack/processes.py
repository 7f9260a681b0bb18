"""Starting, identifying and stopping the stack's background processes.

A process is remembered by pid *and* its kernel start time, so ``down`` never signals a
process that merely reused a pid after ours exited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcessRecord:
    """A process the stack started: enough to find it again and stop exactly it."""

    name: str
    pid: int
    start_time: int
    log: str
    #: How to start it again (kept for attached processes, which ``up`` restarts when dead).
    argv: tuple[str, ...] = ()
    #: The environment variables it was given on top of its starter's environment.
    env: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"], data["env"] = list(self.argv), dict(self.env)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=data["name"],
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            log=data["log"],
            argv=tuple(data.get("argv") or ()),
            env=dict(data.get("env") or {}),
        )

    def is_alive(self) -> bool:
        """True while the recorded process (same pid, same start time) still runs."""
        return start_time(self.pid) == self.start_time


def start_time(pid: int) -> int | None:
    """The kernel start time of ``pid`` (None when it does not run)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the parenthesised command name.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # zombie: exited, not yet reaped
        return None
    return int(fields[19])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    env_overrides: Mapping[str, str] | None = None,
) -> ProcessRecord:
    """Start ``argv`` detached in its own session, output appended to ``log``. With
    ``env_overrides`` the record keeps ``argv`` and those variables, to start it again."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            preexec_fn=_normal_priority,
        )
    start = start_time(proc.pid)
    if start is None:
        raise RuntimeError(f"{name} exited immediately; see {log}")
    if env_overrides is None:
        return ProcessRecord(name=name, pid=proc.pid, start_time=start, log=str(log))
    return ProcessRecord(name, proc.pid, start, str(log), tuple(argv), dict(env_overrides))


def _normal_priority() -> None:
    """A service outlives whatever started it: one started by a background build (CI runs
    ``srs dev build`` at idle CPU priority) runs at normal priority, as it would otherwise."""
    with contextlib.suppress(OSError):
        if os.sched_getscheduler(0) == os.SCHED_IDLE:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def stop(record: ProcessRecord, timeout: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``timeout`` seconds."""
    if not record.is_alive():
        return
    _signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not record.is_alive():
            return
        time.sleep(0.1)
    _signal_group(record.pid, signal.SIGKILL)
    while record.is_alive():
        _reap(record.pid)
        time.sleep(0.05)


def stop_all(records: Sequence[ProcessRecord], timeout: float = 15.0) -> None:
    """Like :func:`stop` for several processes at once: SIGTERM every group, then wait for all
    of them (a Kafka quorum stopped one broker at a time would lose its majority midway, and
    the last brokers would wait for a controller that is gone)."""
    for record in records:
        if record.is_alive():
            _signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for record in records:
        while record.is_alive() and time.monotonic() < deadline:
            _reap(record.pid)
            time.sleep(0.1)
    for record in records:
        kill(record)


def kill(record: ProcessRecord) -> None:
    """SIGKILL the process group (a crash, an OOM kill) and wait until the process is gone."""
    if not record.is_alive():
        return
    _signal_group(record.pid, signal.SIGKILL)
    while record.is_alive():
        _reap(record.pid)
        time.sleep(0.05)


def terminate(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM a child started with ``subprocess.Popen``, wait up to ``timeout`` seconds for
    it to exit, and SIGKILL it if it does not."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _reap(pid: int) -> None:
    # Only our own children can be reaped; for processes started by an earlier
    # ``srs dev up`` this is a no-op and init reaps them.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    alive: Callable[[], bool] | None = None,
    log: str | None = None,
) -> None:
    """Poll ``check`` until it is true; fail early when the process behind it died."""
    deadline = time.monotonic() + timeout
    while True:
        if _succeeds(check):
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited during startup; last log lines:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s; last log lines:\n{tail(log)}")
        time.sleep(0.2)


def _succeeds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:  # noqa: BLE001 - anything short of success means "not yet"
        return False


def tail(log: str | None, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    if not log:
        return ""
    try:
        content = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {log})"
    return "\n".join("    " + line for line in content[-lines:])
