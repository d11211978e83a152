"""Debounce: one run, with the last event, once ``period`` passes without another event
(per key); ``timeout`` caps the wait; a fire that comes twice starts one run."""

from __future__ import annotations

import asyncio
import itertools

from bus import Bus, ConsumerSpec
from runtime.flow import FIRE_SUBJECT, Admission
from runtime.ids import now_ms
from tests.runtime.flow.conftest import Starts, event, flow_for, function


async def test_a_burst_of_events_starts_one_run_with_the_last_event_after_a_quiet_period(bus: Bus) -> None:
    fn = function(debounce={"period_ms": 400})
    starts = Starts()
    flow = await flow_for(bus, [fn], starts)
    try:
        sent = []
        for i in range(3):
            sent.append(event(i))
            last_at = now_ms()
            assert await flow.admit(fn, sent[-1]) is Admission.HELD
            await asyncio.sleep(0.1)
        [(began, start)] = await starts.wait_for(1, 10)
        assert start.event == sent[-1] and start.events == [sent[-1]]
        assert 390 <= began - last_at < 2000
        await asyncio.sleep(0.6)
        assert len(starts.runs) == 1  # and no second run
    finally:
        await flow.stop()


async def test_the_timeout_starts_a_run_even_while_events_keep_coming(bus: Bus) -> None:
    fn = function(debounce={"period_ms": 300, "timeout_ms": 700})
    starts = Starts()
    flow = await flow_for(bus, [fn], starts)
    try:
        first_at = now_ms()
        sent = []
        for i in range(12):  # one every 100 ms for 1.2 s: never 300 ms of quiet
            sent.append(event(i))
            await flow.admit(fn, sent[-1])
            await asyncio.sleep(0.1)
        runs = await starts.wait_for(2, 10)
        began, start = runs[0]
        assert 690 <= began - first_at < 1300
        assert start.event in sent[4:10]  # the latest event when the timeout hit
        # The next window opened with the next event; the last run holds the last event.
        await asyncio.sleep(1.0)
        runs = sorted(starts.runs.values(), key=lambda r: r[0])
        # Normally two runs; a stall of 300 ms on a loaded machine is a quiet period, so more may come.
        assert len(runs) >= 2 and runs[-1][1].event == sent[-1]
        assert all(began - s.created_ms < 700 + 600 for began, s in runs)  # no window outlives its timeout
        for (_, one), (_, two) in itertools.pairwise(runs):
            assert one.created_ms < two.created_ms and one.event["data"]["n"] < two.event["data"]["n"]
    finally:
        await flow.stop()


async def test_each_key_value_is_debounced_on_its_own(memory_bus: Bus) -> None:
    fn = function(debounce={"period_ms": 200, "key": "event.data.user"})
    starts = Starts()
    flow = await flow_for(memory_bus, [fn], starts)
    try:
        for i, user in enumerate("abab"):
            await flow.admit(fn, event(i, user=user))
        runs = await starts.wait_for(2, 10)
        assert sorted((s.event["data"]["user"], s.event["data"]["n"]) for _, s in runs) == [("a", 2), ("b", 3)]
    finally:
        await flow.stop()


async def test_a_fire_handled_twice_starts_the_same_run_and_a_settled_one_nothing(memory_bus: Bus) -> None:
    fn = function(debounce={"period_ms": 100})
    flow = await flow_for(memory_bus, [fn])  # no starter: this test reads the fire itself
    ev = event(1)
    await flow.admit(fn, ev)
    consumer = await memory_bus.consumer(ConsumerSpec(stream="SLUICE_STEPS", durable="t", filter_subject=FIRE_SUBJECT))
    [msg] = await consumer.fetch(1, 5)
    one, two = await flow.on_fire(msg.data), await flow.on_fire(msg.data)
    assert one is not None and two is not None
    assert one[1].run_id == two[1].run_id and one[1].event == ev
    await flow.settle(one[1])
    await flow.settle(one[1])  # twice is fine
    assert await flow.on_fire(msg.data) is None


async def test_a_window_whose_fire_was_lost_is_started_after_recover(bus: Bus) -> None:
    fn = function(debounce={"period_ms": 100})
    crashed = await flow_for(bus, [fn])
    ev = event(1)
    await crashed.admit(fn, ev)
    consumer = await bus.consumer(ConsumerSpec(stream="SLUICE_STEPS", durable="flow", filter_subject=FIRE_SUBJECT))
    [msg] = await consumer.fetch(1, 5)
    await msg.ack()  # lost: as if the node died between saving the window and its fire
    await consumer.close()
    starts = Starts()
    flow = await flow_for(bus, [fn], starts)
    try:
        assert await flow.recover() == 1
        [(_, start)] = await starts.wait_for(1, 10)
        assert start.event == ev
    finally:
        await flow.stop()


async def test_a_key_whose_window_closed_debounces_again_from_an_idle_record(bus: Bus) -> None:
    fn = function(debounce={"period_ms": 150})
    starts = Starts()
    flow = await flow_for(bus, [fn], starts)
    try:
        first, second = event(1), event(2)
        await flow.admit(fn, first)
        await starts.wait_for(1, 10)
        await asyncio.sleep(0.2)  # settled: the record is idle (written empty) now
        await flow.admit(fn, second)
        runs = await starts.wait_for(2, 10)
        assert [s.event for _, s in runs] == [first, second]
        assert runs[0][1].run_id != runs[1][1].run_id
    finally:
        await flow.stop()
