"""Fixtures for the NATS driver's own tests: a real nats-server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus.server import NatsServer
from tests.conformance.conftest import nats_binary_or_skip


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """A started nats-server with JetStream, its store in ``tmp_path/nats``; stopped after the test."""
    nats_binary_or_skip()
    async with NatsServer(tmp_path / "nats") as server:
        yield server
