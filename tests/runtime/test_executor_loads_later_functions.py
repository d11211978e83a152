"""A whole node (API, scheduler, executor, WASM sandbox) on each bus driver: a function whose
app is loaded after the node started gets a job lane, and its runs run to completion."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bus import Bus
from bus.memory import MemoryBus
from bus.nats import NatsBus
from bus.server import NatsServer
from runtime.history import History
from runtime.node import Node, NodeConfig
from runtime.registry import discover
from sandboxes import open_sandbox
from tests.conformance.conftest import nats_binary_or_skip

WASM_APP = Path(__file__).resolve().parents[2] / "examples" / "wasm"  # polyglot/echo-size on demo/ping


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    if request.param == "memory":
        yield MemoryBus()
        return
    nats_binary_or_skip()
    async with NatsServer(tmp_path / "nats") as server:
        yield NatsBus(server.url)


async def test_a_function_loaded_after_the_node_started_has_its_runs_run(bus: Bus, tmp_path: Path) -> None:
    node = Node(NodeConfig(port=0), bus=bus, history=History(f"sqlite:///{tmp_path / 'h.db'}"),
                sandboxes={"wasm": open_sandbox("wasm")})
    await node.start([])  # no apps yet
    try:
        assert node.registry.all() == []
        assert await node.load_apps(discover(WASM_APP, "wasm")) == []
        [fn] = node.registry.all()
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{node.url}/e/dev", data=json.dumps({"name": "demo/ping"})) as resp:
                assert resp.status == 200
                [event_id] = (await resp.json())["ids"]
            run = await _finished_run(http, node.url, event_id, timeout_s=60)
        assert run["status"] == "completed", run
        assert run["function"] == fn.fqid and run["output"]["language"] == "wat"
    finally:
        await node.stop()


async def _finished_run(http: aiohttp.ClientSession, url: str, event_id: str, *, timeout_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        async with http.get(f"{url}/v1/events/{event_id}") as resp:
            if resp.status == 200:
                runs = (await resp.json())["data"].get("runs") or []
                if runs and runs[0]["status"] in {"completed", "failed", "cancelled"}:
                    async with http.get(f"{url}/v1/runs/{runs[0]['id']}") as detail:
                        return dict((await detail.json())["data"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"the run of {event_id} did not finish in {timeout_s} s")
