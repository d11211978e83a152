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
from runtime.history import History
from runtime.ids import derived_id, now_ms
from runtime.jobs import job_messages
from runtime.registry import Registry
from runtime.state import RunState, RunStore
from runtime.streams import scheduler_consumer
from runtime.waits import Waits
from sluice.protocol import unpack

log = structlog.get_logger("sluice.scheduler")


class Scheduler:
    def __init__(self, bus: Bus, runs: RunStore, registry: Registry, history: History, waits: Waits,
                 *, batch: int = 256) -> None:
        self._bus = bus
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

    async def schedule(self, events: list[dict[str, Any]]) -> list[RunState]:
        """Create the runs ``events`` start and enqueue their first jobs. Idempotent."""
        created: list[RunState] = []
        jobs: list[OutMsg] = []
        received = now_ms()
        for event in events:
            for fn in self._registry.match(event):
                state = RunState(
                    id=derived_id(int(event.get("ts") or received), f"{event['id']}/{fn.fqid}"),
                    app=fn.app, function=fn.fqid, event=event, events=[event], created_at=received,
                )
                if not await self._runs.create(state):
                    existing = await self._runs.load(state.id)
                    if existing is None or existing.status != "queued":
                        continue  # already under way (or gone): nothing owed
                    state = existing  # created before a crash: make sure its job exists
                created.append(state)
                jobs.extend(job_messages(state))
        await self._history.record_events([{**e, "received_at": received} for e in events])
        for state in created:
            await self._history.record_run(state.row())
        if jobs:
            await self._bus.publish_batch(jobs)
        for event in events:
            await self._waits.on_event(event)
        for state in created:
            log.info("run queued", run_id=state.id, function=state.function, event_id=state.event["id"])
        return created

