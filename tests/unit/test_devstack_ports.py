"""``free_port`` hands out ports a server can still bind when it starts a moment later:
never from the kernel's ephemeral range (outgoing connections take their source ports
from there), never one that is in use, never the same one twice."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devstack import processes


def _ephemeral_range() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def test_ports_are_outside_the_ephemeral_range_distinct_and_bindable() -> None:
    low, high = _ephemeral_range()
    ports = [processes.free_port() for _ in range(200)]
    assert len(set(ports)) == 200
    assert all(not low <= p <= high for p in ports)
    for port in ports[:20]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))
            s.listen()


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(processes, "_ports_outside_ephemeral_range", lambda: [busy])
        # Only the busy port is a candidate: free_port falls back to the kernel's choice.
        assert processes.free_port() != busy


def test_reserved_ports_are_parsed_from_the_kernel_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = tmp_path / "reserved"
    listing.write_text("10001,10005-10007\n")
    monkeypatch.setattr(processes, "_RESERVED_PORTS", listing)
    assert processes._reserved_ports() == {10001, 10005, 10006, 10007}
    assert not {10001, 10005, 10006, 10007} & set(processes._ports_outside_ephemeral_range())


def test_a_broker_that_could_not_bind_names_the_port_and_what_holds_it() -> None:
    from devstack import kafka

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", processes.free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        assert processes.port_user(busy)  # something holds it (ss's line, or "in use")
        broker = kafka.Broker(2, "kafka-2", processes.free_port(), busy, processes.free_port())
        said = kafka._taken(broker, "java.net.BindException: Address already in use")
        assert said.startswith("\nkafka-2's ports in use by another process now: SASL_SSL ")
        assert str(busy) in said and "PLAINTEXT" not in said
        assert kafka._taken(broker, "some other failure") == ""
    assert processes.port_user(busy) == ""
