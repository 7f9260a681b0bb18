"""Fixtures shared by unit tests: moto's server for the AWS HTTP protocols (DynamoDB), and a
local server speaking the LLM providers' wire protocols (``tests/unit/wire_doubles.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.moto_server import FAKE_CREDENTIALS, moto_server
from tests.unit.wire_doubles import WireServer, wire_server


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials moto accepts, and no profile of the developer's own."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's server on a free loopback port, one per test module."""
    with moto_server() as url:
        yield url


@pytest.fixture
def server() -> Iterator[WireServer]:
    """A local HTTP server answering with the replies a test queues (the real SDKs talk to it)."""
    with wire_server() as s:
        yield s
