"""Starting, identifying and stopping the stack's background processes.

A process is remembered by pid *and* its kernel start time, so ``down`` never signals a
process that merely reused a pid after ours exited.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
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


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
_LOWEST_PORT = 10000
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, for a server started later.

    The port is chosen outside the kernel's ephemeral range. A port from inside it (what
    binding port 0 returns) can become the source port of any outgoing connection in the
    time between choosing it and the server binding it, and the server then dies with
    "Address already in use": a broker of a three-broker stack did in CI, while the brokers
    already running connected to each other. Ports this process handed out before are not
    handed out again."""
    candidates = _ports_outside_ephemeral_range()
    for _ in range(500 if candidates else 0):
        port = random.choice(candidates)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # no room outside: the kernel's choice
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ports_outside_ephemeral_range() -> list[int]:
    try:
        low, high = (int(v) for v in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    reserved = _reserved_ports()
    ports = [*range(_LOWEST_PORT, max(low, _LOWEST_PORT)), *range(high + 1, 65536)]
    return [p for p in ports if p not in reserved]


def _reserved_ports() -> set[int]:
    """The ports in ``ip_local_reserved_ports`` ("8080,9000-9100")."""
    try:
        text = _RESERVED_PORTS.read_text().strip()
    except OSError:
        return set()
    reserved: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        reserved.update(range(int(first), int(last or first) + 1))
    return reserved


def _bindable(port: int) -> bool:
    """Nothing holds ``port`` on 127.0.0.1, not even a connection in TIME_WAIT (the bind is
    made without SO_REUSEADDR, so it is stricter than the server's will be)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_user(port: int) -> str:
    """What holds ``port`` on 127.0.0.1 ("" when nothing does): the process listening on it or
    the connection using it as its source port, as ``ss`` shows them (when it is installed)."""
    if _bindable(port):
        return ""
    ss = shutil.which("ss")
    if ss is None:
        return "in use"
    done = subprocess.run([ss, "-Htanp", f"sport = :{port}"], capture_output=True, text=True, check=False)
    lines = [" ".join(line.split()) for line in done.stdout.splitlines() if line.strip()]
    return " | ".join(lines[:3]) or "in use (TIME_WAIT or another address)"


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
