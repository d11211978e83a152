"""The NATS driver's publish_many: long runs of messages with ids go as atomic batches
(one acknowledgement each), a refused batch goes again message by message, and a
stream without atomic batches is published to message by message."""

from __future__ import annotations

import json

import nats

from bus import ConsumerSpec, OutMsg, PubAck, StreamSpec
from bus.nats import NatsBus
from bus.server import NatsServer


def _msgs(ids: range, subject: str = "ev.a") -> list[OutMsg]:
    return [OutMsg(subject, b"%d" % i, msg_id=f"id-{i}") for i in ids]


async def _stored(bus: NatsBus, stream: str) -> list[bytes]:
    consumer = await bus.consumer(ConsumerSpec(stream=stream, durable="check"))
    out: list[bytes] = []
    for _ in range(30):  # bounded: a few thousand messages in fetches of 1000
        got = await consumer.fetch(1000, 0.5)
        out += [m.data for m in got]
        if not got:
            break
    await consumer.close()
    return out


async def test_a_long_run_goes_in_atomic_batches_and_a_refused_one_again_message_by_message(
        nats_server: NatsServer) -> None:
    async with NatsBus(nats_server.url) as bus:
        await bus.ensure_stream(StreamSpec(name="EV", subjects=["ev.>"]))
        fast = bus._fast
        assert fast is not None
        first = await bus.publish_many(_msgs(range(2500)))
        assert fast.atomic_batches == 3 and fast.atomic_refused == 0  # 1000 + 1000 + 500
        assert all(isinstance(a, PubAck) and not a.duplicate for a in first)
        seqs = [a.seq for a in first if isinstance(a, PubAck)]
        assert seqs == list(range(seqs[0], seqs[0] + 2500))
        # 100 new ids after 500 stored ones: the server refuses the batch, nothing of it is
        # stored, and the messages go again one by one: 500 duplicates, 100 new.
        again = await bus.publish_many(_msgs(range(2000, 2600)))
        assert fast.atomic_batches == 3 and fast.atomic_refused == 1
        kinds = [a.duplicate for a in again if isinstance(a, PubAck)]
        assert len(kinds) == 600 and kinds == [True] * 500 + [False] * 100
        # A short run is pipelined; so are messages without ids.
        short = await bus.publish_many(_msgs(range(3000, 3010)) + [OutMsg("ev.b", b"x")] * 100)
        assert fast.atomic_batches == 3 and all(isinstance(a, PubAck) for a in short)
        stored = await _stored(bus, "EV")
        assert len(stored) == 2600 + 10 + 100
        assert sorted(set(stored) - {b"x"}) == sorted(b"%d" % i for i in [*range(2600), *range(3000, 3010)])


async def test_a_stream_without_atomic_batches_gets_every_message_one_by_one(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    config = {"name": "OLD", "subjects": ["old.>"], "storage": "file", "retention": "limits",
              "num_replicas": 1, "duplicate_window": 120 * 10**9}  # as made before allow_atomic
    await nc.request("$JS.API.STREAM.CREATE.OLD", json.dumps(config).encode(), timeout=5)
    await nc.close()
    async with NatsBus(nats_server.url) as bus:
        fast = bus._fast
        assert fast is not None
        results = await bus.publish_many(_msgs(range(300), "old.x") + _msgs(range(300), "old.x"))
        assert fast.atomic_batches == 0 and fast.atomic_refused == 0
        assert [a.duplicate for a in results if isinstance(a, PubAck)] == [False] * 300 + [True] * 300
        assert len(await _stored(bus, "OLD")) == 300
