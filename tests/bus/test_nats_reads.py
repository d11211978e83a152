"""The NATS driver's look-backs (``read_since``, ``keys(prefix)``): what they ask the server, what they leave."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from bus import BusError, ConsumerSpec, OutMsg, StreamSpec
from bus.nats import NatsBus
from bus.server import NatsServer

pytestmark = pytest.mark.nats


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Any]:
    """A plain nats-py connection, to watch the wire and the server behind the driver's back."""
    conn = await nats.connect(nats_server.url)
    yield conn
    await conn.close()


async def _consumer_creates(nc: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Record the config of every consumer created from now on."""
    seen: list[dict[str, Any]] = []

    async def record(msg: Any) -> None:
        seen.append(json.loads(msg.data)["config"])

    sub = await nc.subscribe("$JS.API.CONSUMER.CREATE.>", cb=record)
    await nc.flush()
    return sub, seen


async def _consumer_count(nc: Any, stream: str) -> int:
    return int((await nc.jetstream().stream_info(stream)).state.consumer_count)


async def test_keys_at_a_token_boundary_ask_the_server_to_filter(nats_server: NatsServer, nc: Any) -> None:
    async with NatsBus(nats_server.url) as bus:
        kv = await bus.kv("runs")
        for key in ("a.1", "a.2", "ab.1", "b.1"):
            await kv.put(key, b"v")
        _, seen = await _consumer_creates(nc)
        assert await kv.keys("a.") == ["a.1", "a.2"]
        assert await kv.keys("a.1") == ["a.1"]
        assert await kv.keys("a") == ["a.1", "a.2", "ab.1"]
        assert await kv.keys() == ["a.1", "a.2", "ab.1", "b.1"]
        await nc.flush()
        assert [c["filter_subject"] for c in seen] == ["$KV.runs.a.>", "$KV.runs.a.>", "$KV.runs.>", "$KV.runs.>"]
        assert await _consumer_count(nc, "KV_runs") == 0


async def test_read_since_asks_for_an_ephemeral_unacked_start_time_read_and_leaves_nothing(
    nats_server: NatsServer, nc: Any
) -> None:
    async with NatsBus(nats_server.url) as bus:
        await bus.ensure_stream(StreamSpec("EV", ["ev.>"]))
        await bus.consumer(ConsumerSpec("EV", "durable"))
        await bus.publish("ev.x", b"1")
        _, seen = await _consumer_creates(nc)
        since = time.time() - 60
        assert [m.data for m in await bus.read_since("EV", "ev.*", since)] == [b"1"]
        assert await bus.read_since("EV", "ev.none", since) == []
        await nc.flush()
        for config in seen:
            assert "durable_name" not in config
            assert (config["ack_policy"], config["deliver_policy"], config["mem_storage"]) == (
                "none", "by_start_time", True)
            assert config["opt_start_time"].startswith(time.strftime("%Y-", time.gmtime(since)))
        assert [c["filter_subject"] for c in seen] == ["ev.*", "ev.none"]
        assert await _consumer_count(nc, "EV") == 1  # only the durable
        with pytest.raises(BusError, match="holds no subject"):
            await bus.read_since("EV", "elsewhere.>", since)
        assert await _consumer_count(nc, "EV") == 1


async def test_read_since_reads_past_one_pull_batch_and_stops_at_the_limit(nats_server: NatsServer) -> None:
    async with NatsBus(nats_server.url) as bus:
        await bus.ensure_stream(StreamSpec("EV", ["ev.>"]))
        await bus.publish_batch([OutMsg("ev.x", b"%d" % i) for i in range(1200)])
        started = time.monotonic()
        every = await bus.read_since("EV", "ev.x", 0, limit=5000)
        some = await bus.read_since("EV", "ev.x", 0, limit=700)
        assert time.monotonic() - started < 3.0
        assert [m.data for m in every] == [b"%d" % i for i in range(1200)]
        assert [m.seq for m in some] == list(range(1, 701))


async def test_read_since_keeps_up_with_messages_published_while_it_reads(nats_server: NatsServer) -> None:
    async with NatsBus(nats_server.url) as bus:
        await bus.ensure_stream(StreamSpec("EV", ["ev.>"]))
        await bus.publish_batch([OutMsg("ev.x", b"%d" % i) for i in range(600)])
        got, _ = await asyncio.gather(
            bus.read_since("EV", "ev.x", 0, limit=5000),
            bus.publish_batch([OutMsg("ev.x", b"late") for _ in range(300)]),
        )
        # Whatever it saw of the late ones, it saw them in order and after the early ones.
        assert [m.data for m in got[:600]] == [b"%d" % i for i in range(600)]
        assert all(m.data == b"late" for m in got[600:])
        assert [m.seq for m in got] == sorted(m.seq for m in got)
