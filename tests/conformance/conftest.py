"""Fixtures for the conformance suites: every driver of a contract behind one fixture."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus import Bus
from bus.memory import MemoryBus
from bus.nats import NatsBus
from bus.server import NatsServer, NatsServerError, find_binary

# The suites live in modules not named test_*.py: ask pytest to rewrite their asserts too.
pytest.register_assert_rewrite("tests.conformance.bus")


def nats_binary_or_skip() -> Path:
    """The nats-server binary; a missing one skips the test, or fails it under CI=true."""
    try:
        return find_binary()
    except NatsServerError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"nats-server is required under CI: {err}")
        pytest.skip(str(err))


#: Fixture params for "each bus driver" (the NATS one marked ``nats``): see :func:`started_bus`.
BUS_DRIVERS = ["memory", pytest.param("nats", marks=pytest.mark.nats)]


@contextlib.asynccontextmanager
async def started_bus(driver: str, tmp_path: Path) -> AsyncIterator[Bus]:
    """A started bus of ``driver`` (one of :data:`BUS_DRIVERS`); the NATS one on its own
    nats-server in ``tmp_path``."""
    if driver == "memory":
        async with MemoryBus() as memory:
            yield memory
        return
    nats_binary_or_skip()
    async with NatsServer(tmp_path / "nats") as server, NatsBus(server.url) as nats_bus:
        yield nats_bus


@pytest.fixture(params=BUS_DRIVERS)
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    """A started bus of each driver; the NATS one on its own nats-server in ``tmp_path``."""
    async with started_bus(request.param, tmp_path) as started:
        yield started
