"""Parked runs: waits for events, invoked child runs, and resuming them.

A run waiting for event X has a *wait entry* in the ``sluice-waits`` KV bucket under
``<token of X>.<run id>``; the scheduler looks entries up by the event name's token for
every event it takes. Resuming is a compare-and-set on the run's state: it records the
step's result ({"data": event} or, for invokes, the child's output or error), gives
the run a new token and enqueues its job. Whoever resumes first wins; the rest
(a second matching event, the timeout job) find the pending step already gone.
"""

from __future__ import annotations

from typing import Any

import structlog

from bus import Bus, KeyValue
from runtime.expressions import matches
from runtime.history import History
from runtime.ids import now_ms
from runtime.indexed import for_indexed_names
from runtime.jobs import enqueue
from runtime.outcomes import resolve
from runtime.state import RunState, RunStore, StaleStateError
from runtime.streams import EVENTS_STREAM, event_subject, name_token
from sluice.protocol import pack, unpack

log = structlog.get_logger("sluice.waits")

CAS_TRIES = 8
# Events stored this long before a wait was registered still count (clock skew between
# nodes, and the time from the guest's op to the wait's registration).
RACE_SLACK_MS = 2_000


def wait_key(event_name: str, run_id: str) -> str:
    return f"{name_token(event_name)}.{run_id}"


class Waits:
    def __init__(self, bus: Bus, runs: RunStore, index: KeyValue, history: History) -> None:
        self._bus = bus
        self._runs = runs
        self._index = index
        self._history = history

    async def register(self, state: RunState, since_ms: int) -> None:
        """Index ``state``'s pending wait, then catch any matching event stored since
        ``since_ms`` (it may have arrived before the entry existed: the race Inngest users hit)."""
        pending = state.pending
        assert pending is not None and pending["kind"] == "wait"
        await self._index.put(wait_key(pending["event"], state.id),
                              pack({"run": state.id, "step": pending["id"], "if": pending.get("if")}))
        recent = await self._bus.read_since(EVENTS_STREAM, event_subject(pending["event"]),
                                            (since_ms - RACE_SLACK_MS) / 1000)
        for msg in recent:
            event = unpack(msg.data)
            if event.get("name") == pending["event"] and matches(pending.get("if"),
                                                                 {"event": state.event, "async": event}):
                await self.resume(state.id, pending["id"], {"data": event})
                return

    async def on_events(self, events: list[dict[str, Any]]) -> int:
        """:meth:`on_event` for each of ``events``, in order (see :func:`for_indexed_names`)."""
        return await for_indexed_names(self._index, events, self.on_event)

    async def on_event(self, event: dict[str, Any]) -> int:
        """Resume every run waiting for ``event`` whose ``if`` matches; returns how many."""
        resumed = 0
        for key in await self._index.keys(prefix=f"{name_token(event['name'])}."):
            entry = await self._index.get(key)
            if entry is None:
                continue
            wait = unpack(entry.value)
            state = await self._runs.load(wait["run"])
            if state is None or state.pending is None or state.pending.get("id") != wait["step"]:
                await self._index.delete(key)  # the run moved on (timeout, cancel): stale entry
                continue
            if state.pending.get("event") != event["name"]:
                continue
            if not matches(wait.get("if"), {"event": state.event, "async": event}):
                continue
            if await self.resume(wait["run"], wait["step"], {"data": event}):
                resumed += 1
        return resumed

    async def resume(self, run_id: str, step_id: str, result: dict[str, Any]) -> bool:
        """Record ``result`` for the run's pending step and enqueue it; ``False`` if the
        step is no longer pending (someone else resumed it, or it timed out)."""
        for _ in range(CAS_TRIES):
            state = await self._runs.load(run_id)
            if state is None or state.final or state.pending is None or state.pending.get("id") != step_id:
                return False
            pending = state.pending
            record = resolve(state, result, now_ms())
            try:
                await self._runs.save(state)
            except StaleStateError:
                continue
            await enqueue(self._bus, state)
            if pending["kind"] == "wait":
                await self._index.delete(wait_key(pending["event"], run_id))
            await self._history.record_step(run_id, record)
            await self._history.record_run(state.row())
            log.info("run resumed", run_id=run_id, step_id=step_id, by=pending["kind"])
            return True
        log.warning("could not resume a run: its state kept changing", run_id=run_id, step_id=step_id)
        return False

    async def forget(self, state: RunState) -> None:
        """Drop the wait entry of a run that no longer waits (timed out, cancelled)."""
        if state.pending is not None and state.pending.get("kind") == "wait":
            await self._index.delete(wait_key(state.pending["event"], state.id))
