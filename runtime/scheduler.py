"""The scheduler: events in, runs out.

Pulls events from the EVENTS stream, finds the functions each one starts, creates
each run's state (idempotently: the run id derives from the event id and the
function, so a redelivered event finds its runs already there) and enqueues the
run's first job. Only then is the event acked, so an accepted event is never lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from bus import Bus, Consumer, OutMsg
from runtime.cancels import Cancels
from runtime.cron import TIMER_EVENT, next_fire_ms, tick_event
from runtime.expressions import evaluate
from runtime.flow import Admission, FlowControl, Start
from runtime.history import History
from runtime.ids import derived_id, now_ms
from runtime.jobs import job_messages
from runtime.registry import FunctionDef, Registry
from runtime.state import RunState, RunStore
from runtime.streams import event_message, scheduler_consumer
from runtime.waits import Waits
from sluice.protocol import unpack

log = structlog.get_logger("sluice.scheduler")


class Scheduler:
    def __init__(self, bus: Bus, runs: RunStore, registry: Registry, history: History, waits: Waits,
                 cancels: Cancels, flow: FlowControl, *, batch: int = 256) -> None:
        self._bus = bus
        self._flow = flow
        self._cancels = cancels
        self._waits = waits
        self._runs = runs
        self._registry = registry
        self._history = history
        self._batch = batch
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._consumer = await self._bus.consumer(scheduler_consumer())
        await self.arm_crons()
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.close()
            self._consumer = None

    async def _loop(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            try:
                msgs = await self._consumer.fetch(self._batch, timeout_s=0.5)
            except Exception as exc:
                log.warning("fetching events failed; retrying", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            if not msgs:
                continue
            try:
                events = [unpack(m.data) for m in msgs]
                await self.schedule(events)
            except Exception as exc:  # leave them unacked: they come back after ack_wait
                log.exception("scheduling events failed; they will be redelivered", error=str(exc))
                continue
            await asyncio.gather(*(m.ack() for m in msgs))

    @staticmethod
    def _run_id(fn: FunctionDef, event: dict[str, Any], received: int) -> str:
        """Derived from the event and function, so a redelivered event finds its run; with an
        idempotency key, from the key's value instead: one run per value, ever."""
        expr = fn.raw.get("idempotency")
        if expr:
            key = evaluate(expr, {"event": event})
            if key is not None:
                return derived_id(0, f"idem/{fn.fqid}/{key!r}")
        return derived_id(int(event.get("ts") or received), f"{event['id']}/{fn.fqid}")

    def _delay(self, fn: FunctionDef, event: dict[str, Any], now: int) -> int | None:
        """Low priority (below 0) holds a run's first job back that many seconds."""
        lag = -self._flow.priority(fn, event)
        return now + lag * 1000 if lag > 0 else None

    async def _create(self, fn: FunctionDef, event: dict[str, Any], received: int) -> RunState | None:
        """The run of ``fn`` for ``event`` (see :meth:`_open`)."""
        return await self._open(fn, RunState(id=self._run_id(fn, event, received), app=fn.app, function=fn.fqid,
                                             event=event, events=[event], created_at=received))

    async def _open(self, fn: FunctionDef, state: RunState) -> RunState | None:
        """``state`` created with its cancel rules, or the run a crash left queued under its
        id; ``None`` if that run is already under way (or gone): nothing owed."""
        if not await self._runs.create(state):
            existing = await self._runs.load(state.id)
            if existing is None or existing.status != "queued":
                return None
            state = existing  # created before a crash: make sure its job and rules exist
        await self._cancels.register(fn, state)
        return state

    async def start_flow_run(self, fn: FunctionDef, start: Start) -> None:
        """Start the run of a closed debounce or batch window (called by flow control)."""
        state = await self._open(fn, RunState(id=start.run_id, app=fn.app, function=fn.fqid, event=start.event,
                                              events=start.events, created_at=now_ms()))
        if state is None:
            return
        await self._history.record_run(state.row())
        await self._bus.publish_batch(job_messages(state))
        log.info("run queued", run_id=state.id, function=state.function, events=len(state.events))

    async def arm_crons(self) -> None:
        """Publish the next tick of every cron trigger (deduped: every node may do this)."""
        now = now_ms()
        ticks = [self._tick(fn.fqid, trig, next_fire_ms(trig["cron"], trig.get("tz"), now))
                 for fn in self._registry.all() for trig in fn.crons]
        if ticks:
            await self._bus.publish_batch(ticks)
            log.info("cron armed", ticks=len(ticks))

    def _next_tick(self, event: dict[str, Any], received: int) -> list[OutMsg]:
        data = event.get("data") or {}
        fn = self._registry.get(str(data.get("function")))
        trig = next((t for t in fn.crons if t["cron"] == data.get("cron")), None) if fn else None
        if fn is None or trig is None:
            return []  # the function or its schedule is gone: let the chain end
        after = max(int(data.get("fire_ms") or 0), received)  # skip ticks missed while down
        return [self._tick(fn.fqid, trig, next_fire_ms(trig["cron"], trig.get("tz"), after))]

    @staticmethod
    def _tick(function: str, trigger: dict[str, Any], fire_ms: int) -> OutMsg:
        msg = event_message(tick_event(function, trigger, fire_ms))
        return OutMsg(subject=msg.subject, data=msg.data, msg_id=msg.msg_id, deliver_at=fire_ms / 1000)

    async def schedule(self, events: list[dict[str, Any]]) -> list[RunState]:
        """Create the runs ``events`` start and enqueue their first jobs. Idempotent."""
        jobs: list[OutMsg] = []
        received = now_ms()
        starts: list[tuple[FunctionDef, dict[str, Any]]] = []
        for event in events:  # in order: rate limits and windows count events as they come
            if event.get("name") == TIMER_EVENT:
                jobs.extend(self._next_tick(event, received))
            for fn in self._registry.match(event):
                if await self._flow.admit(fn, event) is Admission.START:
                    starts.append((fn, event))  # else rate limited, or held by a debounce or batch window
        # Each run is its own KV key: create them all at once (round trips overlap), in order.
        made = await asyncio.gather(*(self._create(fn, event, received) for fn, event in starts))
        created = [state for state in made if state is not None]
        for (fn, event), state in zip(starts, made, strict=True):
            if state is not None:
                jobs.extend(job_messages(state, deliver_at_ms=self._delay(fn, event, received)))
        await self._history.record_events([{**e, "received_at": received} for e in events])
        for state in created:
            await self._history.record_run(state.row())
        if jobs:
            await self._bus.publish_batch(jobs)
        await asyncio.gather(self._waits.on_events(events), self._cancels.on_events(events))
        for state in created:
            log.info("run queued", run_id=state.id, function=state.function, event_id=state.event["id"])
        return created

