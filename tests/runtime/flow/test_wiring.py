"""The wiring the package docstring prescribes, with the real run store and job stream: a
closed window becomes exactly one queued run with its first job; a Wait re-sends the job;
a function that disappeared drops its held events; garbage fires do not stop the loop."""

from __future__ import annotations

import asyncio

import pytest

from bus import Bus, ConsumerSpec
from runtime.flow import FIRE_SUBJECT, FLOW_BUCKET, FlowControl, Start, Wait
from runtime.ids import now_ms
from runtime.jobs import decode_job, enqueue
from runtime.registry import FunctionDef
from runtime.state import RunState, RunStore
from runtime.streams import RUNS_BUCKET, job_subject
from tests.runtime.flow.conftest import Starts, event, flow_for, function, run


async def test_a_closed_batch_becomes_one_queued_run_with_its_first_job(bus: Bus) -> None:
    fn = function(batch={"max_size": 2, "timeout_ms": 60_000})
    runs = RunStore(await bus.kv(RUNS_BUCKET), max_bytes=1 << 20)
    created = asyncio.Event()

    async def start_flow_run(fn: FunctionDef, start: Start) -> None:  # as in runtime/flow/__init__.py
        state = RunState(id=start.run_id, app=fn.app, function=fn.fqid, event=start.event,
                         events=start.events, created_at=now_ms())
        if not await runs.create(state):
            existing = await runs.load(start.run_id)
            if existing is None or existing.status != "queued":
                return
            state = existing
        await enqueue(bus, state)
        created.set()

    flow = FlowControl(bus, {fn.fqid: fn}.get)
    await flow.start(start_flow_run)
    try:
        one, two = event(1), event(2)
        await flow.admit(fn, one)
        await flow.admit(fn, two)
        await asyncio.wait_for(created.wait(), 10)
        [run_id] = await runs.ids()
        state = await runs.load(run_id)
        assert state is not None and state.events == [one, two] and state.event == one
        jobs = await bus.consumer(ConsumerSpec(stream="SLUICE_STEPS", durable="executor",
                                               filter_subject=job_subject(fn.fqid)))
        [msg] = await jobs.fetch(10, 5)
        assert decode_job(msg.data).run_id == run_id
    finally:
        await flow.stop()


async def test_a_wait_re_sends_the_job_under_a_new_message_id(memory_bus: Bus) -> None:
    fn = function(concurrency={"limit": 1})
    flow = await flow_for(memory_bus, [fn])
    assert not isinstance(await flow.acquire(fn, run(event(0), fn)), Wait)
    state = run(event(1), fn)
    await enqueue(memory_bus, state)  # the job being handled
    wait = await flow.acquire(fn, state)
    assert isinstance(wait, Wait)
    await enqueue(memory_bus, state, deliver_at_ms=wait.at_ms, nonce=wait.nonce)
    jobs = await memory_bus.consumer(ConsumerSpec(stream="SLUICE_STEPS", durable="executor",
                                                  filter_subject=job_subject(fn.fqid)))
    first = await jobs.fetch(10, 0.1)
    await first[0].ack()
    later = await jobs.fetch(10, 2)
    assert len(first) == 1 and len(later) == 1  # the re-send was not deduped away
    assert decode_job(later[0].data).enqueued_at == wait.at_ms


async def test_held_events_of_a_function_that_disappeared_start_nothing(memory_bus: Bus) -> None:
    fn = function(debounce={"period_ms": 100})
    starts = Starts()
    flow = FlowControl(memory_bus, lambda _fqid: None)  # the app was reloaded without it
    await flow.start(starts)
    try:
        await flow.admit(fn, event(1))
        await asyncio.sleep(0.6)
        assert starts.calls == 0
        kv = await memory_bus.kv(FLOW_BUCKET)
        [key] = await kv.keys("d.")
        entry = await kv.get(key)
        assert entry is not None and entry.value == b""  # settled: idle
    finally:
        await flow.stop()


async def test_a_malformed_fire_is_dropped_and_the_next_one_still_starts_its_run(memory_bus: Bus) -> None:
    fn = function(batch={"max_size": 1, "timeout_ms": 60_000})
    starts = Starts()
    flow = await flow_for(memory_bus, [fn], starts)
    try:
        await memory_bus.publish(FIRE_SUBJECT, b"\xc1 not msgpack")
        await flow.admit(fn, event(1))
        await starts.wait_for(1, 10)
    finally:
        await flow.stop()


async def test_using_flow_control_before_start_says_so(memory_bus: Bus) -> None:
    fn = function(rate_limit={"limit": 1, "period_ms": 1000})
    with pytest.raises(RuntimeError, match="not started: call start"):
        await FlowControl(memory_bus, {fn.fqid: fn}.get).admit(fn, event(1))
