"""Concurrency: never more than ``limit`` steps executing at once across nodes, per key;
waiters are delayed, not dropped; a crashed node's slots come back when its leases expire."""

from __future__ import annotations

import asyncio

from bus import Bus
from runtime.flow import Slot, Wait
from runtime.ids import now_ms
from tests.runtime.flow.conftest import event, flow_for, function, run, start_when_allowed


async def test_two_nodes_sharing_a_bus_never_run_more_steps_at_once_than_the_limit(bus: Bus) -> None:
    fn = function(concurrency={"limit": 2})
    nodes = [await flow_for(bus, [fn]), await flow_for(bus, [fn])]
    running, peak, done = 0, 0, 0

    async def step(i: int) -> None:
        nonlocal running, peak, done
        state = run(event(i), fn)
        node = nodes[i % 2]
        while True:
            got = await node.acquire(fn, state)
            if isinstance(got, Wait):
                await asyncio.sleep(max(0.0, (got.at_ms - now_ms()) / 1000))
                continue
            async with got:
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.05)
                running -= 1
            done += 1
            return

    async with asyncio.timeout(60):
        await asyncio.gather(*(step(i) for i in range(10)))
    assert done == 10
    assert peak == 2


async def test_each_key_value_has_its_own_limit(memory_bus: Bus) -> None:
    fn = function(concurrency={"limit": 1, "key": "event.data.user"})
    flow = await flow_for(memory_bus, [fn])
    a1 = await flow.acquire(fn, run(event(1, user="a"), fn))
    b1 = await flow.acquire(fn, run(event(2, user="b"), fn))
    a2 = await flow.acquire(fn, run(event(3, user="a"), fn))
    assert isinstance(a1, Slot) and isinstance(b1, Slot)
    assert isinstance(a2, Wait) and a2.reason == "concurrency" and a2.at_ms > now_ms()
    await a1.release()
    assert isinstance(await flow.acquire(fn, run(event(4, user="a"), fn)), Slot)


async def test_a_function_without_a_limit_gets_a_slot_that_holds_nothing(memory_bus: Bus) -> None:
    fn = function()
    flow = await flow_for(memory_bus, [fn])
    slots = [await flow.acquire(fn, run(event(i), fn)) for i in range(50)]
    assert all(isinstance(s, Slot) and s.lease is None for s in slots)


async def test_a_crashed_nodes_slot_is_free_again_once_its_lease_expires(bus: Bus) -> None:
    fn = function(concurrency={"limit": 1})
    crashed = await flow_for(bus, [fn], lease_ttl_s=0.4)
    survivor = await flow_for(bus, [fn], lease_ttl_s=0.4)
    taken = await crashed.acquire(fn, run(event(1), fn))
    assert isinstance(taken, Slot)  # ...and its node dies: nobody renews or releases it
    t0 = now_ms()
    assert isinstance(await survivor.acquire(fn, run(event(2), fn)), Wait)
    began = await start_when_allowed(survivor, fn, run(event(3), fn), 0.0, deadline_s=10)
    assert 300 <= began - t0 < 3000


async def test_a_held_slot_is_renewed_past_its_ttl_while_the_step_runs(bus: Bus) -> None:
    fn = function(concurrency={"limit": 1})
    a = await flow_for(bus, [fn], lease_ttl_s=0.3)
    b = await flow_for(bus, [fn], lease_ttl_s=0.3)
    slot = await a.acquire(fn, run(event(1), fn))
    assert isinstance(slot, Slot)
    async with slot:
        for _ in range(4):  # 1.2 s: four ttls
            await asyncio.sleep(0.3)
            assert isinstance(await b.acquire(fn, run(event(2), fn)), Wait)
    assert isinstance(await b.acquire(fn, run(event(3), fn)), Slot)


async def test_a_higher_priority_waiter_is_told_to_come_back_sooner(memory_bus: Bus) -> None:
    fn = function(concurrency={"limit": 1}, priority="event.data.p")
    flow = await flow_for(memory_bus, [fn])
    assert isinstance(await flow.acquire(fn, run(event(0, p=0), fn)), Slot)
    now = now_ms()
    high = [await flow.acquire(fn, run(event(1, p=600), fn)) for _ in range(20)]
    low = [await flow.acquire(fn, run(event(2, p=-600), fn)) for _ in range(20)]
    assert all(isinstance(w, Wait) for w in high + low)
    high_ms = [w.at_ms - now for w in high if isinstance(w, Wait)]
    low_ms = [w.at_ms - now for w in low if isinstance(w, Wait)]
    assert max(high_ms) <= 300
    assert sum(low_ms) > sum(high_ms)
