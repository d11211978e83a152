"""Operating runs: cancel and replay (``POST /v1/runs/{id}/cancel`` and ``/replay``).

Cancelling is a compare-and-set to ``cancelled`` with a new token, so every job the
run still had (a sleep's timer, a wait's timeout) finds itself stale and is dropped;
its wait entry is removed. Nothing is held while a run sleeps or waits, so nothing
else needs freeing. Replaying starts a new run of the same function from the same
event, optionally keeping the memoized steps recorded before a chosen step.
"""

from __future__ import annotations

import contextlib
from typing import Any

import structlog

from bus import Bus
from runtime.history import History
from runtime.ids import new_id, now_ms
from runtime.jobs import enqueue
from runtime.state import RunState, RunStore, StaleStateError
from runtime.waits import Waits

log = structlog.get_logger("sluice.operations")

CAS_TRIES = 8
BULK_LIMIT = 10_000


class RunNotFound(LookupError):
    pass


class Operations:
    def __init__(self, bus: Bus, runs: RunStore, waits: Waits, history: History) -> None:
        self._bus = bus
        self._runs = runs
        self._waits = waits
        self._history = history

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a run; returns its row. A finished run is returned unchanged."""
        for _ in range(CAS_TRIES):
            state = await self._runs.load(run_id)
            if state is None:
                raise RunNotFound(run_id)
            if state.final:
                return state.row()
            await self._waits.forget(state)
            state.status, state.ended_at, state.token, state.pending = "cancelled", now_ms(), new_id(), None
            try:
                await self._runs.save(state)
            except StaleStateError:
                continue
            await self._history.record_run(state.row())
            log.info("run cancelled", run_id=run_id)
            return state.row()
        raise RuntimeError(f"run {run_id} kept changing; try again")

    async def cancel_many(self, function: str, *, from_ms: int | None = None, to_ms: int | None = None,
                          limit: int = BULK_LIMIT) -> list[str]:
        """Cancel the unfinished runs of ``function`` created in [from_ms, to_ms]; at most
        ``limit`` a call. Returns the ids cancelled."""
        cancelled: list[str] = []
        cursor: str | None = None
        for _ in range(limit // 100 + 1):
            rows, cursor = await self._history.list_runs(function=function, limit=100, cursor=cursor)
            for row in rows:
                created = row.get("created_at") or 0
                if row["status"] in ("completed", "failed", "cancelled"):
                    continue
                if (from_ms is not None and created < from_ms) or (to_ms is not None and created > to_ms):
                    continue
                with contextlib.suppress(RunNotFound):
                    if (await self.cancel(row["id"]))["status"] == "cancelled":
                        cancelled.append(row["id"])
                if len(cancelled) >= limit:
                    return cancelled
            if cursor is None or (from_ms is not None and rows and (rows[-1].get("created_at") or 0) < from_ms):
                break
        return cancelled

    async def replay(self, run_id: str, *, from_step: str | None = None) -> dict[str, Any]:
        """A new run of the same function and event. ``from_step``: keep the outputs of the
        steps recorded before it (by step id) and run from it on."""
        original = await self._runs.load(run_id)
        if original is None:
            raise RunNotFound(run_id)
        steps: dict[str, dict[str, Any]] = {}
        if from_step is not None:
            if from_step not in original.steps:
                raise ValueError(f"run {run_id} has no recorded step {from_step!r}")
            for step_id, result in original.steps.items():  # insertion order = the order they were recorded
                if step_id == from_step:
                    break
                steps[step_id] = result
        state = RunState(id=new_id(), app=original.app, function=original.function, event=original.event,
                         events=original.events, created_at=now_ms(), steps=steps, replay_of=run_id)
        await self._runs.create(state)
        await self._history.record_run(state.row())
        await enqueue(self._bus, state)
        log.info("run replayed", run_id=state.id, replay_of=run_id, from_step=from_step)
        return state.row()
