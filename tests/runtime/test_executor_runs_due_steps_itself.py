"""A run whose next step is due at once goes on under the job that started it: one job
through SLUICE_STEPS for a three-step run, every step still recorded once. A sleep (or
anything not due now) sends a job as before."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bus import BusError, KeyValue, OutMsg, PubAck
from bus._memory_kv import MemoryKeyValue
from bus.memory import MemoryBus
from runtime.history import History
from runtime.node import Node, NodeConfig
from runtime.registry import discover
from runtime.streams import RUNS_BUCKET
from sandboxes.wasm import WasmSandbox
from tests.sandboxes import wasm_fixtures as fx

wasm_cache = fx.wasm_cache

pytestmark = pytest.mark.slow  # CPython for WASI

APP = '''
import sluice

app = sluice.App("cont", reuse_instances=True)


@app.function(id="three", trigger="cont/three", retries=0)
def three(ctx):
    a = ctx.step.run("a", lambda: 1)
    b = ctx.step.run("b", lambda: a + 1)
    return ctx.step.run("c", lambda: a + b)


@app.function(id="nap", trigger="cont/nap", retries=0)
def nap(ctx):
    a = ctx.step.run("a", lambda: 1)
    ctx.step.sleep("rest", "10ms")
    return ctx.step.run("b", lambda: a + 1)
'''


class CountingBus(MemoryBus):
    """The in-memory bus, counting the step jobs published through it."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[str] = []

    async def publish_batch(self, msgs: Sequence[OutMsg]) -> list[PubAck]:
        self.jobs += [m.subject for m in msgs if m.subject.startswith("sluice.steps.run")]
        return await super().publish_batch(msgs)


async def finished(history: History, function: str, timeout_s: float = 30.0) -> dict[str, Any]:
    for _ in range(int(timeout_s / 0.05)):
        runs, _ = await history.list_runs(function=function)
        if runs and runs[0]["status"] in ("completed", "failed"):
            await history.flush()
            run = await history.get_run(runs[0]["id"])
            assert run is not None
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"no finished run of {function} in {timeout_s} s")


async def test_a_three_step_run_needs_one_job_and_records_each_step_once(wasm_cache: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(APP)
    bus = CountingBus()
    history = History(f"sqlite:///{tmp_path / 'history.db'}")
    sandbox = WasmSandbox(cache_dir=wasm_cache)
    node = Node(NodeConfig(port=0), bus=bus, history=history, sandboxes={"wasm": sandbox})
    await node.start(discover(app, "wasm"))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{node.url}/e/dev", json={"name": "cont/three"}) as resp:
                assert resp.status == 200
            run = await finished(history, "cont/three")
            assert run["status"] == "completed" and run["output"] == 3
            assert [(s["name"], s["status"]) for s in run["steps"]] == [
                ("a", "completed"), ("b", "completed"), ("c", "completed")]
            assert len(bus.jobs) == 1  # the first job only: b and c ran under it

            async with http.post(f"{node.url}/e/dev", json={"name": "cont/nap"}) as resp:
                assert resp.status == 200
            napped = await finished(history, "cont/nap")
            assert napped["status"] == "completed" and napped["output"] == 2
            assert len(bus.jobs) == 1 + 2  # its first job, and the one that wakes it after the sleep
    finally:
        await node.stop()


class FlakyKV(MemoryKeyValue):
    """The runs bucket, refusing its second update once (a bus hiccup mid-run)."""

    updates = 0

    async def update(self, key: str, value: bytes, last: int) -> int:
        FlakyKV.updates += 1
        if FlakyKV.updates == 2:
            raise BusError("injected: the bus went away for a moment")
        return await super().update(key, value, last)


class FlakyBus(CountingBus):
    async def kv(self, bucket: str) -> KeyValue:
        kv = await super().kv(bucket)  # creates the bucket's state
        return FlakyKV(self, bucket, self._buckets[bucket]) if bucket == RUNS_BUCKET else kv


async def test_a_job_that_failed_mid_run_comes_back_in_seconds_not_after_the_ack_wait(
    wasm_cache: Path, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(APP)
    FlakyKV.updates = 0
    bus = FlakyBus()
    history = History(f"sqlite:///{tmp_path / 'history.db'}")
    node = Node(NodeConfig(port=0), bus=bus, history=history, sandboxes={"wasm": WasmSandbox(cache_dir=wasm_cache)})
    await node.start(discover(app, "wasm"))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{node.url}/e/dev", json={"name": "cont/three"}) as resp:
                assert resp.status == 200
            run = await finished(history, "cont/three", timeout_s=20)
        assert FlakyKV.updates >= 3  # the failed save happened, and the run went on after it
        assert run["status"] == "completed" and run["output"] == 3
        assert [s["name"] for s in run["steps"] if s["status"] == "completed"] == ["a", "b", "c"]
    finally:
        await node.stop()
