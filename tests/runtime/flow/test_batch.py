"""Batch: events gather per key into one run of up to ``max_size`` events, started when
the batch is full or ``timeout`` after its first event; no event is lost or doubled."""

from __future__ import annotations

import asyncio

from bus import Bus
from runtime.flow import Admission
from runtime.ids import now_ms
from tests.runtime.flow.conftest import Starts, event, flow_for, function


async def test_a_full_batch_starts_at_once_and_the_rest_at_the_timeout(bus: Bus) -> None:
    fn = function(batch={"max_size": 3, "timeout_ms": 500})
    starts = Starts()
    a, b = await flow_for(bus, [fn], starts), await flow_for(bus, [fn], starts)  # two nodes
    try:
        sent = [event(i) for i in range(7)]
        t0 = now_ms()
        for i, ev in enumerate(sent):
            assert await (a if i % 2 else b).admit(fn, ev) is Admission.HELD
        full = await starts.wait_for(2, 10)
        assert all(now - t0 < 400 for now, _ in full)  # did not wait for the timeout
        [*_, (began, rest)] = await starts.wait_for(3, 10)
        assert began - t0 >= 490
        batches = [s.events for _, s in sorted(starts.runs.values(), key=lambda r: r[1].events[0]["data"]["n"])]
        assert batches == [sent[0:3], sent[3:6], sent[6:7]]
        assert rest.event == sent[6]
        await asyncio.sleep(0.6)
        assert len(starts.runs) == 3
    finally:
        await a.stop()
        await b.stop()


async def test_a_batch_that_never_fills_starts_at_its_timeout(bus: Bus) -> None:
    fn = function(batch={"max_size": 100, "timeout_ms": 300})
    starts = Starts()
    flow = await flow_for(bus, [fn], starts)
    try:
        t0 = now_ms()
        sent = [event(i) for i in range(4)]
        for ev in sent:
            await flow.admit(fn, ev)
        [(began, start)] = await starts.wait_for(1, 10)
        assert 290 <= began - t0 < 2000
        assert start.events == sent and start.event == sent[0]
    finally:
        await flow.stop()


async def test_each_key_value_gathers_its_own_batch(memory_bus: Bus) -> None:
    fn = function(batch={"max_size": 2, "timeout_ms": 60_000, "key": "event.data.user"})
    starts = Starts()
    flow = await flow_for(memory_bus, [fn], starts)
    try:
        for i, user in enumerate("abba"):
            await flow.admit(fn, event(i, user=user))
        runs = await starts.wait_for(2, 10)
        got = sorted([e["data"]["user"] for e in s.events] + [str([e["data"]["n"] for e in s.events])]
                     for _, s in runs)
        assert got == [["a", "a", "[0, 3]"], ["b", "b", "[1, 2]"]]
    finally:
        await flow.stop()


async def test_a_redelivered_event_is_not_added_twice(memory_bus: Bus) -> None:
    fn = function(batch={"max_size": 3, "timeout_ms": 300})
    starts = Starts()
    flow = await flow_for(memory_bus, [fn], starts)
    try:
        one, two = event(1), event(2)
        for ev in (one, one, two, one):
            await flow.admit(fn, ev)
        [(_, start)] = await starts.wait_for(1, 10)
        assert start.events == [one, two]
    finally:
        await flow.stop()


async def test_a_starter_that_fails_is_retried_and_still_starts_one_run(memory_bus: Bus) -> None:
    fn = function(batch={"max_size": 2, "timeout_ms": 60_000})
    starts = Starts()
    failures = 0

    async def flaky(fn_: object, start: object) -> None:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise RuntimeError("history store is down")
        await starts(fn_, start)  # type: ignore[arg-type]

    flow = await flow_for(memory_bus, [fn])
    await flow.stop()
    await flow.start(flaky)
    try:
        await flow.admit(fn, event(1))
        await flow.admit(fn, event(2))
        [(_, start)] = await starts.wait_for(1, 15)
        assert len(start.events) == 2 and failures == 2
    finally:
        await flow.stop()
