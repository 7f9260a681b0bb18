"""Fixtures shared by unit tests: a local server speaking the LLM providers' wire protocols
(``tests/unit/wire_doubles.py``). moto's fixtures are in ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.wire_doubles import WireServer, wire_server


@pytest.fixture
def server() -> Iterator[WireServer]:
    """A local HTTP server answering with the replies a test queues (the real SDKs talk to it)."""
    with wire_server() as s:
        yield s
