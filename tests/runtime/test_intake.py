"""The executor's intake on each bus driver (memory and a real nats-server): jobs come in turns
between functions, functions registered later get a lane, jobs of unregistered functions are
still handed out, and jobs fetched but not handed out go back to the queue on halt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus import Bus, Message, OutMsg
from runtime.ids import now_ms
from runtime.intake import Intake
from runtime.jobs import decode_job, job_messages
from runtime.limits import RuntimeLimits
from runtime.registry import FunctionDef, Registry
from runtime.state import RunState
from runtime.streams import LEGACY_JOBS_SUBJECT, executor_consumer, job_subject, steps_stream
from sandboxes import Target
from sluice.protocol import pack
from tests.conformance.conftest import BUS_DRIVERS, started_bus

LIMITS = RuntimeLimits()


@pytest.fixture(params=BUS_DRIVERS)
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    """A started bus of each driver holding the SLUICE_STEPS stream."""
    async with started_bus(request.param, tmp_path) as started:
        await started.ensure_stream(steps_stream(LIMITS))
        yield started


def function(app: str, fid: str) -> FunctionDef:
    return FunctionDef(app=app, id=fid, name=fid, triggers=({"event": "e", "if": None},), retries=0,
                       timeout_ms=1000, target=Target(kind="module", ref="x.wat"), sandbox="wasm", raw={"id": fid})


def registry(*fns: FunctionDef) -> Registry:
    reg = Registry({}, LIMITS)
    for app in {fn.app for fn in fns}:
        reg.replace_app(app, [fn for fn in fns if fn.app == app])
    return reg


async def queue_runs(bus: Bus, fn: FunctionDef, count: int, tag: str) -> set[str]:
    """``count`` runs of ``fn`` with their first job queued; returns their ids."""
    states = [RunState(id=f"{tag}-{i}", app=fn.app, function=fn.fqid, event={}, events=[], created_at=now_ms())
              for i in range(count)]
    for start in range(0, count, 500):
        await bus.publish_batch([m for s in states[start:start + 500] for m in job_messages(s)])
    return {s.id for s in states}


async def take(intake: Intake, timeout_s: float = 10.0) -> Message:
    msg = await asyncio.wait_for(intake.next(), timeout_s)
    assert msg is not None
    return msg


async def test_a_burst_of_one_function_does_not_hold_back_another(bus: Bus) -> None:
    a, b = function("shop", "a"), function("shop", "b")
    backlog = await queue_runs(bus, a, 1000, "a")
    [late] = await queue_runs(bus, b, 1, "b")  # queued after all of a's
    intake = Intake(bus, registry(a, b), LIMITS, free=lambda: 1)
    await intake.start()
    try:
        order: list[str] = []
        while late not in order:
            assert len(order) < 1001, "b's job never came"
            msg = await take(intake)
            order.append(decode_job(msg.data).run_id)
            await msg.ack()
        # First come, first served would hand it out 1,001st; in turns, among the first few
        # (a's lane may hand out what it fetched before b's lane has fetched b's job).
        assert order.index(late) < 8, order
        rest = [decode_job((await take(intake)).data).run_id for _ in range(1000 - len(order) + 1)]
        assert sorted(order + rest) == sorted(backlog | {late})  # every job once
    finally:
        await intake.close()


async def test_two_busy_functions_take_turns(bus: Bus) -> None:
    a, b = function("shop", "a"), function("shop", "b")
    await queue_runs(bus, a, 40, "a")
    await queue_runs(bus, b, 40, "b")
    intake = Intake(bus, registry(a, b), LIMITS, free=lambda: 1)
    await intake.start()
    try:
        await asyncio.sleep(0.5)  # both lanes have fetched
        order = []
        for _ in range(20):
            msg = await take(intake)
            order.append(decode_job(msg.data).run_id[0])
            await msg.ack()
        # In turns: a lane is passed over only while its next job is still being fetched.
        assert abs(order.count("a") - order.count("b")) <= 2, order
        assert "aaa" not in "".join(order) and "bbb" not in "".join(order), order
    finally:
        await intake.close()


async def test_a_function_registered_after_start_gets_its_jobs_handed_out(bus: Bus) -> None:
    a, late = function("shop", "a"), function("mail", "send")
    reg = registry(a)
    intake = Intake(bus, reg, LIMITS, free=lambda: 1, sync_s=0.2, sweep_s=3600)
    await intake.start()
    try:
        assert intake.subjects == [job_subject(a.fqid)]
        reg.replace_app("mail", [late])  # an app (re)load
        [run_id] = await queue_runs(bus, late, 1, "late")
        msg = await take(intake, 5)
        assert decode_job(msg.data).run_id == run_id
        await msg.ack()
        assert sorted(intake.subjects) == sorted([job_subject(a.fqid), job_subject(late.fqid)])
        reg.replace_app("mail", [])  # removed again: its lane goes at the next sync
        await asyncio.sleep(0.6)
        assert intake.subjects == [job_subject(a.fqid)]
    finally:
        await intake.close()


async def test_jobs_no_registered_function_reads_are_still_handed_out(bus: Bus) -> None:
    # A function removed while its runs were queued (the executor fails those runs), and a
    # job on the single subject every job went to before they were split by function.
    a, gone = function("shop", "a"), function("shop", "gone")
    [orphan] = await queue_runs(bus, gone, 1, "gone")
    await bus.publish(LEGACY_JOBS_SUBJECT, pack({"run": "legacy", "token": "t", "at": now_ms()}))
    intake = Intake(bus, registry(a), LIMITS, free=lambda: 1, sweep_s=0.3, sync_s=0.1)
    await intake.start()
    try:
        got = [await take(intake, 5), await take(intake, 5)]
        assert sorted(decode_job(m.data).run_id for m in got) == sorted([orphan, "legacy"])
        for msg in got:
            await msg.ack()
        for _ in range(50):  # the next sweep finds them gone and retires their lanes
            if intake.subjects == [job_subject(a.fqid)]:
                break
            await asyncio.sleep(0.1)
        assert intake.subjects == [job_subject(a.fqid)]
    finally:
        await intake.close()


async def test_halting_hands_back_the_jobs_fetched_and_not_handed_out(bus: Bus) -> None:
    a = function("shop", "a")
    ids = await queue_runs(bus, a, 3, "a")
    intake = Intake(bus, registry(a), LIMITS, free=lambda: 8, prefetch=2)
    await intake.start()
    first = await take(intake)  # the lane fetched two and refills: it holds two jobs now
    await asyncio.sleep(0.5)
    await intake.close()
    # The ack wait is hours: only jobs handed back come again this soon.
    consumer = await bus.consumer(executor_consumer(LIMITS, job_subject(a.fqid)))
    again: list[Message] = []
    for _ in range(10):
        again += await consumer.fetch(3, 1.0)
        if len(again) == 2:
            break
    assert sorted(decode_job(m.data).run_id for m in [first, *again]) == sorted(ids)
    await consumer.close()


async def test_while_every_slot_is_busy_a_lane_holds_one_job(bus: Bus) -> None:
    a = function("shop", "a")
    await queue_runs(bus, a, 5, "a")
    free = 0
    intake = Intake(bus, registry(a), LIMITS, free=lambda: free, prefetch=4)
    await intake.start()
    try:
        await asyncio.sleep(0.5)
        other = await bus.consumer(executor_consumer(LIMITS, job_subject(a.fqid)))
        # The other four are still free for another node (here: the same durable bound again).
        taken = await other.fetch(10, 2.0)
        assert len(taken) == 4
        for msg in taken:
            await msg.nak()
        await other.close()
        msg = await take(intake)
        await msg.ack()
        free = 8
    finally:
        await intake.close()


def test_job_subjects_are_per_function_and_outside_the_flow_subject() -> None:
    a, b = function("shop", "a"), function("shop", "b")
    assert job_subject(a.fqid) != job_subject(b.fqid)
    assert job_subject(a.fqid).startswith(LEGACY_JOBS_SUBJECT + ".")
    state = RunState(id="r", app="shop", function=a.fqid, event={}, events=[], created_at=0,
                     planned={"s1": {"name": "s1"}, "s2": {"name": "s2"}})
    assert {m.subject for m in job_messages(state)} == {job_subject(a.fqid)}  # branches too
    assert executor_consumer(LIMITS, job_subject(a.fqid)).durable == "executor-" + job_subject(a.fqid)[-16:]
    assert isinstance(job_messages(state)[0], OutMsg)
