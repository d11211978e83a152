"""Fixtures for flow control: a bus of each driver with the job stream, and helpers that play
the scheduler's and the executor's parts the way the integration does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bus import Bus
from bus.memory import MemoryBus
from runtime.flow import FlowControl, Start, Wait
from runtime.ids import new_id, now_ms
from runtime.limits import RuntimeLimits
from runtime.registry import FunctionDef
from runtime.state import RunState
from runtime.streams import steps_stream
from sandboxes import Target
from tests.conformance.conftest import BUS_DRIVERS, started_bus


async def _ready(bus: Bus) -> Bus:
    await bus.ensure_stream(steps_stream(RuntimeLimits()))
    return bus


@pytest.fixture(params=BUS_DRIVERS)
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    """A started bus of each driver holding the SLUICE_STEPS stream."""
    async with started_bus(request.param, tmp_path) as started:
        yield await _ready(started)


@pytest.fixture
async def memory_bus() -> AsyncIterator[Bus]:
    async with MemoryBus() as memory:
        yield await _ready(memory)


def function(fid: str = "f", **raw: Any) -> FunctionDef:
    """A registered function whose introspected options are ``raw``."""
    return FunctionDef(app="shop", id=fid, name=fid, triggers=({"event": "e", "if": None},), retries=0,
                       timeout_ms=1000, target=Target(kind="module", ref="x.wat"), sandbox="wasm",
                       raw={"id": fid, **raw})


def event(n: int, **data: Any) -> dict[str, Any]:
    return {"id": f"ev-{n}-{new_id()}", "name": "e", "data": {"n": n, **data}, "ts": now_ms(), "user": {}}


def run(ev: dict[str, Any], fn: FunctionDef, *, started: bool = False) -> RunState:
    return RunState(id=new_id(), app=fn.app, function=fn.fqid, event=ev, events=[ev], created_at=now_ms(),
                    started_at=now_ms() if started else None)


class Starts:
    """A starter that records each Start once per run id (as idempotent run creation does)."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[int, Start]] = {}
        self.calls = 0
        self.changed = asyncio.Event()

    async def __call__(self, fn: FunctionDef, start: Start) -> None:
        self.calls += 1
        self.runs.setdefault(start.run_id, (now_ms(), start))
        self.changed.set()

    async def wait_for(self, count: int, timeout_s: float) -> list[tuple[int, Start]]:
        """The first ``count`` runs started, by start time; fails after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while len(self.runs) < count:
                self.changed.clear()
                await self.changed.wait()
        return sorted(self.runs.values(), key=lambda r: r[0])


async def flow_for(bus: Bus, fns: list[FunctionDef], starts: Starts | None = None,
                   **kw: Any) -> FlowControl:
    by_id = {fn.fqid: fn for fn in fns}
    flow = FlowControl(bus, by_id.get, **kw)
    await flow.start(starts)
    return flow


async def start_when_allowed(flow: FlowControl, fn: FunctionDef, state: RunState, hold_s: float,
                             *, deadline_s: float = 20.0) -> int:
    """Play the executor: ask for a slot until one is given (sleeping out each Wait), hold it
    ``hold_s``; returns when the step began (ms): the moment it last asked, which is no
    later than the moment its slot or throttle place was taken."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while loop.time() < end:
        asked = now_ms()
        got = await flow.acquire(fn, state)
        if isinstance(got, Wait):
            await asyncio.sleep(max(0.0, (got.at_ms - now_ms()) / 1000))
            continue
        async with got:
            await asyncio.sleep(hold_s)
        return asked
    raise AssertionError("no slot within the deadline")
