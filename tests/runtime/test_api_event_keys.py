"""A node configured with event keys accepts only those keys (401 for others, nothing
stored); the in-memory bus carries the same API as NATS does."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from bus.memory import MemoryBus
from runtime.history import History
from runtime.node import Node, NodeConfig
from runtime.streams import scheduler_consumer
from sluice.protocol import unpack


async def test_an_unknown_event_key_gets_401_and_stores_nothing(tmp_path: Path) -> None:
    bus = MemoryBus()
    node = Node(NodeConfig(port=0, roles=("api",), event_keys={"secret-key"}), bus=bus,
                history=History(f"sqlite:///{tmp_path / 'h.db'}"), sandboxes={})
    await node.start()
    try:
        async with aiohttp.ClientSession() as http:
            body = json.dumps({"name": "a/b"})
            async with http.post(f"{node.url}/e/wrong-key", data=body) as resp:
                assert resp.status == 401
                assert "unknown event key" in (await resp.json())["error"]
            consumer = await bus.consumer(scheduler_consumer())
            assert await consumer.fetch(10, timeout_s=0.2) == []
            async with http.post(f"{node.url}/e/secret-key", data=body) as resp:
                assert resp.status == 200
                [event_id] = (await resp.json())["ids"]
            [msg] = await consumer.fetch(10, timeout_s=1)
            assert unpack(msg.data)["id"] == event_id
            await consumer.close()
    finally:
        await node.stop()
