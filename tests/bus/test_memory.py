"""The memory driver on an injected clock: timers tested without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bus import BusError, ConsumerSpec, StreamSpec
from bus._names import patterns_overlap, subject_matches
from bus.memory import MemoryBus


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def bus(clock: Clock) -> AsyncIterator[MemoryBus]:
    async with MemoryBus(clock=clock) as memory:
        yield memory


async def test_redelivery_nak_delay_and_in_progress_follow_the_clock(bus: MemoryBus, clock: Clock) -> None:
    await bus.ensure_stream(StreamSpec("S", ["s.>"]))
    await bus.publish("s.x", b"x")
    consumer = await bus.consumer(ConsumerSpec("S", "c", ack_wait_s=30))
    [msg] = await consumer.fetch(1, 0)
    clock.now += 29
    await msg.in_progress()
    clock.now += 29
    assert await consumer.fetch(1, 0) == []
    clock.now += 2
    [again] = await consumer.fetch(1, 0)
    assert again.num_delivered == 2
    await again.nak(600)
    clock.now += 599
    assert await consumer.fetch(1, 0) == []
    clock.now += 1
    [third] = await consumer.fetch(1, 0)
    assert third.num_delivered == 3


async def test_deliver_at_and_the_dedupe_window_follow_the_clock(bus: MemoryBus, clock: Clock) -> None:
    await bus.ensure_stream(StreamSpec("S", ["s.>"], allow_schedules=True, dedupe_window_s=60))
    consumer = await bus.consumer(ConsumerSpec("S", "c"))
    await bus.publish("s.x", b"in an hour", msg_id="a", deliver_at=clock.now + 3600)
    assert (await bus.publish("s.x", b"same", msg_id="a")).duplicate
    clock.now += 61
    assert not (await bus.publish("s.x", b"window passed", msg_id="a")).duplicate
    [msg] = await consumer.fetch(10, 0)
    assert msg.data == b"window passed"
    await msg.ack()
    clock.now += 3600
    assert [m.data for m in await consumer.fetch(10, 0)] == [b"in an hour"]


async def test_acked_work_queue_messages_go_and_old_ones_expire(bus: MemoryBus, clock: Clock) -> None:
    await bus.ensure_stream(StreamSpec("W", ["w.>"], work_queue=True))
    await bus.ensure_stream(StreamSpec("L", ["l.>"], max_age_s=10))
    await bus.publish("w.x", b"1")
    await bus.publish("l.x", b"old")
    [msg] = await (await bus.consumer(ConsumerSpec("W", "c"))).fetch(1, 0)
    await msg.ack()
    assert bus.streams["W"].messages == {}
    clock.now += 11
    assert await (await bus.consumer(ConsumerSpec("L", "c"))).fetch(1, 0) == []


async def test_max_ack_pending_limits_what_is_out_at_once(bus: MemoryBus) -> None:
    await bus.ensure_stream(StreamSpec("S", ["s.>"]))
    for i in range(5):
        await bus.publish("s.x", b"%d" % i)
    consumer = await bus.consumer(ConsumerSpec("S", "c", max_ack_pending=2))
    first = await consumer.fetch(10, 0)
    assert len(first) == 2
    assert await consumer.fetch(10, 0) == []
    await first[0].ack()
    assert len(await consumer.fetch(10, 0)) == 1


async def test_a_waiting_fetch_wakes_when_a_message_arrives(bus: MemoryBus) -> None:
    await bus.ensure_stream(StreamSpec("S", ["s.>"]))
    consumer = await bus.consumer(ConsumerSpec("S", "c"))
    waiting = asyncio.create_task(consumer.fetch(1, 10))
    await asyncio.sleep(0.01)
    await bus.publish("s.x", b"x")
    [msg] = await asyncio.wait_for(waiting, 1)
    assert msg.data == b"x"


async def test_closed_consumers_and_buses_refuse_work(bus: MemoryBus) -> None:
    await bus.ensure_stream(StreamSpec("S", ["s.>"]))
    consumer = await bus.consumer(ConsumerSpec("S", "c"))
    await consumer.close()
    with pytest.raises(BusError, match="closed"):
        await consumer.fetch(1, 0)
    await bus.close()
    with pytest.raises(BusError, match="closed"):
        await bus.kv("b")


def test_subjects_match_and_overlap_as_on_nats() -> None:
    assert subject_matches("a.*", "a.b") and not subject_matches("a.*", "a.b.c")
    assert subject_matches("a.>", "a.b.c") and not subject_matches("a.>", "a")
    assert subject_matches("a.b", "a.b") and not subject_matches("a.b", "a.c")
    assert patterns_overlap("a.*", "a.b") and patterns_overlap("a.>", "*.b.c")
    assert not patterns_overlap("a.b", "a.b.c") and not patterns_overlap("a.>", "a")


def test_open_bus_picks_the_driver_by_url() -> None:
    from bus import open_bus
    from bus.nats import NatsBus

    assert isinstance(open_bus("memory://"), MemoryBus)
    assert isinstance(open_bus("nats://127.0.0.1:4222,nats://127.0.0.1:4223", name="node-1"), NatsBus)
    with pytest.raises(BusError, match="unknown bus URL"):
        open_bus("redis://localhost")


async def test_read_since_uses_the_clock_for_store_times_due_times_and_max_age(
    bus: MemoryBus, clock: Clock
) -> None:
    await bus.ensure_stream(StreamSpec("S", ["s.>"], allow_schedules=True, max_age_s=100))
    start = clock.now
    await bus.publish("s.a", b"a")
    clock.now += 10
    await bus.publish("s.later", b"later", deliver_at=start + 30)
    await bus.publish("s.b", b"b")
    got = await bus.read_since("S", "s.>", start)
    assert [(m.data, m.timestamp, m.seq) for m in got] == [(b"a", start, 1), (b"b", start + 10, 3)]
    assert [m.data for m in await bus.read_since("S", "s.>", start + 0.5)] == [b"b"]
    clock.now = start + 30
    got = await bus.read_since("S", "s.>", start)
    assert [(m.data, m.timestamp) for m in got] == [(b"a", start), (b"b", start + 10), (b"later", start + 30)]
    clock.now = start + 105  # "a" is past max_age
    assert [m.data for m in await bus.read_since("S", "s.>", 0)] == [b"b", b"later"]
