"""Throttle: starts are spaced ``period / limit`` apart (``burst`` at once), in the order
asked, and none is dropped; only a run's start is throttled."""

from __future__ import annotations

import asyncio
import itertools

from bus import Bus
from runtime.flow import Slot, Wait
from runtime.ids import now_ms
from tests.runtime.flow.conftest import event, flow_for, function, run, start_when_allowed


async def test_excess_starts_are_delayed_in_order_and_never_dropped(bus: Bus) -> None:
    fn = function(throttle={"limit": 2, "period_ms": 500, "burst": 1})  # one start every 250 ms
    nodes = [await flow_for(bus, [fn]), await flow_for(bus, [fn])]
    states = [run(event(i), fn) for i in range(6)]
    t0 = now_ms()
    first = [await nodes[i % 2].acquire(fn, states[i]) for i in range(6)]  # each run asks once, in turn
    places = [w.at_ms if isinstance(w, Wait) else t0 for w in first]
    assert isinstance(first[0], Slot) and all(isinstance(w, Wait) for w in first[1:])
    assert places == sorted(places)  # queued in the order they asked
    assert all(b - a >= 249 for a, b in itertools.pairwise(places))
    await first[0].release()

    async def one(i: int) -> tuple[int, int]:
        return i, await start_when_allowed(nodes[i % 2], fn, states[i], 0.0)

    began = dict(await asyncio.gather(*(one(i) for i in range(1, 6))))
    assert sorted(began) == [1, 2, 3, 4, 5]  # every run started: none dropped
    assert all(began[i] >= places[i] for i in began)  # none early
    assert sorted(began, key=lambda i: began[i]) == [1, 2, 3, 4, 5]  # in their order
    assert began[5] - t0 < 5 * 250 + 2000


async def test_burst_lets_that_many_start_at_once_then_spaces_the_rest(memory_bus: Bus) -> None:
    fn = function(throttle={"limit": 4, "period_ms": 1000, "burst": 3})  # T = 250 ms
    flow = await flow_for(memory_bus, [fn])
    t0 = now_ms()
    got = [await flow.acquire(fn, run(event(i), fn)) for i in range(5)]
    assert all(isinstance(g, Slot) for g in got[:3])
    fourth, fifth = got[3], got[4]
    assert isinstance(fourth, Wait) and isinstance(fifth, Wait) and fourth.reason == "throttle"
    assert 200 <= fourth.at_ms - t0 <= 300
    assert 450 <= fifth.at_ms - t0 <= 550


async def test_a_run_asking_again_keeps_its_place_in_the_queue(memory_bus: Bus) -> None:
    fn = function(throttle={"limit": 1, "period_ms": 400})
    flow = await flow_for(memory_bus, [fn])
    assert isinstance(await flow.acquire(fn, run(event(0), fn)), Slot)
    waiting = run(event(1), fn)
    first = await flow.acquire(fn, waiting)
    again = await flow.acquire(fn, waiting)  # a redelivered or re-sent job for the same run
    later = await flow.acquire(fn, run(event(2), fn))
    assert isinstance(first, Wait) and isinstance(again, Wait) and isinstance(later, Wait)
    assert first.at_ms == again.at_ms
    assert later.at_ms - first.at_ms >= 399  # the second ask took no extra place


async def test_steps_after_the_start_are_not_throttled(memory_bus: Bus) -> None:
    fn = function(throttle={"limit": 1, "period_ms": 60_000})
    flow = await flow_for(memory_bus, [fn])
    for i in range(5):
        assert isinstance(await flow.acquire(fn, run(event(i), fn, started=True)), Slot)


async def test_throttle_and_concurrency_together_give_back_the_slot_while_throttled(memory_bus: Bus) -> None:
    fn = function(concurrency={"limit": 1}, throttle={"limit": 1, "period_ms": 300})
    flow = await flow_for(memory_bus, [fn])
    first = await flow.acquire(fn, run(event(0), fn))
    assert isinstance(first, Slot)
    await first.release()
    second = await flow.acquire(fn, run(event(1), fn))
    assert isinstance(second, Wait) and second.reason == "throttle"
    # The throttled run took no concurrency slot: a running run's next step gets one.
    assert isinstance(await flow.acquire(fn, run(event(2), fn, started=True)), Slot)
