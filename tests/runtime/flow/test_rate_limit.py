"""Rate limit: at most ``limit`` runs per period per key; the rest of the events start
nothing; the period starts with the first admitted event."""

from __future__ import annotations

import asyncio

from bus import Bus
from runtime.flow import Admission
from tests.runtime.flow.conftest import event, flow_for, function


async def test_events_past_the_limit_are_skipped_until_the_period_is_over(bus: Bus) -> None:
    fn = function(rate_limit={"limit": 2, "period_ms": 500})
    a, b = await flow_for(bus, [fn]), await flow_for(bus, [fn])  # two schedulers
    got = [await (a if i % 2 else b).admit(fn, event(i)) for i in range(5)]
    assert got == [Admission.START, Admission.START, Admission.SKIP, Admission.SKIP, Admission.SKIP]
    await asyncio.sleep(0.55)
    got = [await a.admit(fn, event(i)) for i in range(3)]
    assert got == [Admission.START, Admission.START, Admission.SKIP]


async def test_each_key_value_has_its_own_budget(memory_bus: Bus) -> None:
    fn = function(rate_limit={"limit": 1, "period_ms": 60_000, "key": "event.data.user"})
    flow = await flow_for(memory_bus, [fn])
    assert await flow.admit(fn, event(1, user="a")) is Admission.START
    assert await flow.admit(fn, event(2, user="b")) is Admission.START
    assert await flow.admit(fn, event(3, user="a")) is Admission.SKIP


async def test_a_redelivered_admitted_event_is_admitted_again_without_counting(memory_bus: Bus) -> None:
    fn = function(rate_limit={"limit": 1, "period_ms": 60_000})
    flow = await flow_for(memory_bus, [fn])
    first = event(1)
    assert await flow.admit(fn, first) is Admission.START
    assert await flow.admit(fn, first) is Admission.START  # the scheduler crashed before acking it
    assert await flow.admit(fn, event(2)) is Admission.SKIP


async def test_a_function_without_flow_options_starts_every_event(memory_bus: Bus) -> None:
    fn = function()
    flow = await flow_for(memory_bus, [fn])
    assert [await flow.admit(fn, event(i)) for i in range(3)] == [Admission.START] * 3
