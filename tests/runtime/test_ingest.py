"""The ingest path under concurrency: requests published together (``Coalescer``) are each
answered from their own events' acknowledgements, every event is stored once, and one
caller's failure is not another's. On a real nats-server and on the in-memory bus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bus import Bus, BusError, ConsumerSpec, OutMsg, PubAck
from bus.nats import NatsBus
from bus.server import NatsServer
from runtime.api import Coalescer
from runtime.history import History
from runtime.limits import RuntimeLimits
from runtime.node import Node, NodeConfig
from runtime.streams import EVENTS_STREAM, events_stream
from sluice.protocol import pack, unpack
from tests.conformance.conftest import BUS_DRIVERS, nats_binary_or_skip, started_bus


@pytest.fixture(params=BUS_DRIVERS)
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    async with started_bus(request.param, tmp_path) as started:
        yield started


async def _stored_events(bus: Bus, expected: int) -> list[dict[str, object]]:
    """Every event in the EVENTS stream, read by a fresh consumer (bounded: 20 fetches)."""
    consumer = await bus.consumer(ConsumerSpec(stream=EVENTS_STREAM, durable="check"))
    out: list[dict[str, object]] = []
    for _ in range(20):
        msgs = await consumer.fetch(1000, 0.5)
        out += [unpack(m.data) for m in msgs]
        if not msgs and len(out) >= expected:
            break
    await consumer.close()
    return out


async def test_callers_arriving_together_share_one_publish_and_each_gets_its_own_outcomes(bus: Bus) -> None:
    await bus.ensure_stream(events_stream(RuntimeLimits()))
    ingest = Coalescer(bus)
    parts = [[OutMsg(f"sluice.events.c{i}", b"%d-%d" % (i, j), msg_id=f"c{i}-{j}") for j in range(i % 3 + 1)]
             for i in range(40)]
    parts[7] = [OutMsg("sluice.events.ok", b"fine", msg_id="ok-7"), OutMsg("nowhere.at.all", b"lost")]
    results = await asyncio.gather(*(ingest.publish(p) for p in parts))
    assert ingest.calls == 1 and ingest.messages == sum(map(len, parts))  # one turn: one publish
    for i, (part, outcome) in enumerate(zip(parts, results, strict=True)):
        assert len(outcome) == len(part)
        if i == 7:
            assert isinstance(outcome[0], PubAck) and isinstance(outcome[1], BusError)
        else:
            assert all(isinstance(r, PubAck) and not r.duplicate for r in outcome)
    seqs = [r.seq for outcome in results for r in outcome if isinstance(r, PubAck)]
    assert len(set(seqs)) == len(seqs) == sum(map(len, parts)) - 1


async def test_a_busy_coalescer_batches_later_callers_and_stores_each_message_once(bus: Bus) -> None:
    await bus.ensure_stream(events_stream(RuntimeLimits()))
    ingest = Coalescer(bus, big=10_000)
    done: list[list[PubAck | BusError]] = []

    async def caller(n: int) -> None:
        for k in range(25):  # each caller sends its next message once the last one is acknowledged
            msg_id = f"m-{(n * 25 + k) % 400}"  # 800 publishes of 400 ids: each id twice
            msg = OutMsg("sluice.events.busy", pack({"id": msg_id}), msg_id=msg_id)
            done.append(await ingest.publish([msg]))

    await asyncio.gather(*(caller(n) for n in range(32)))
    assert len(done) == 800 and all(len(d) == 1 and isinstance(d[0], PubAck) for d in done)
    acks = [d[0] for d in done if isinstance(d[0], PubAck)]
    assert sum(not a.duplicate for a in acks) == 400
    assert ingest.messages == 800 and ingest.calls < 800 / 2  # later callers joined waiting batches
    stored = await _stored_events(bus, 400)
    assert sorted(str(ev["id"]) for ev in stored) == sorted(f"m-{i}" for i in range(400))


async def test_concurrent_posts_are_each_answered_with_their_own_ids_and_stored_once(tmp_path: Path) -> None:
    nats_binary_or_skip()
    async with NatsServer(tmp_path / "nats") as server:
        bus = NatsBus(server.url)
        node = Node(NodeConfig(port=0, roles=("api",)), bus=bus,
                    history=History(f"sqlite:///{tmp_path / 'h.db'}"), sandboxes={})
        await node.start()
        try:
            connector = aiohttp.TCPConnector(limit=32)
            async with aiohttp.ClientSession(connector=connector) as http:

                async def post(body: object) -> tuple[int, object]:
                    async with http.post(f"{node.url}/e/dev", data=json.dumps(body)) as resp:
                        return resp.status, await resp.json()

                singles = [{"name": "load/single", "id": f"s-{i % 150}", "data": {"i": i}} for i in range(300)]
                anonymous = [{"name": "load/anon", "data": {"i": i}} for i in range(100)]
                batches = [[{"name": "load/batch", "data": {"b": b, "i": i}} for i in range(50)] for b in range(6)]
                bad = [{"name": "load/bad", "id": "bad-0"}, {"name": ""}]  # one bad event: the batch is refused
                sent: list[object] = [*singles, *anonymous, *batches, bad]
                answers = await asyncio.gather(*(post(body) for body in sent))

            for body, (status, answer) in zip(sent, answers, strict=True):
                if body is bad:
                    assert status == 400 and "events[1].name" in answer["error"]  # type: ignore[index]
                    continue
                assert status == 200, answer
                ids = answer["ids"]  # type: ignore[index]
                events = body if isinstance(body, list) else [body]
                assert len(ids) == len(events) and len(set(ids)) == len(ids)
                for ev, event_id in zip(events, ids, strict=True):
                    assert event_id == ev.get("id", event_id) and len(event_id) >= 3
            stored = await _stored_events(bus, 150 + 100 + 300)
            by_id = {ev["id"]: ev for ev in stored}
            assert len(stored) == len(by_id) == 150 + 100 + 300  # a repeated id is stored once
            assert "bad-0" not in by_id
            answered = {i for (status, a) in answers if status == 200 for i in a["ids"]}  # type: ignore[index]
            assert answered == set(by_id)
            for (status, answer), body in zip(answers, sent, strict=True):
                if status == 200 and isinstance(body, dict) and "id" not in body:
                    [event_id] = answer["ids"]  # type: ignore[index]
                    assert by_id[event_id]["data"] == body["data"]  # its own id names its own event
        finally:
            await node.stop()
            await bus.close()
