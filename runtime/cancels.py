"""``cancel_on``: events that cancel a function's runs.

When a run of a function with ``cancel_on`` is created, each cancel rule is indexed in
the ``sluice-cancels`` KV bucket under ``<token of the event name>.<run id>.<n>``. For
every event it takes, the scheduler looks up entries for that name and cancels each
run whose rule matches (CEL with ``event`` = the run's trigger, ``async`` = the
incoming event) and has not expired. Entries of runs that already ended are dropped
when found.
"""

from __future__ import annotations

from typing import Any

import structlog

from bus import KeyValue
from runtime.expressions import matches
from runtime.ids import now_ms
from runtime.indexed import for_indexed_names
from runtime.operations import Operations, RunNotFound
from runtime.registry import FunctionDef
from runtime.state import RunState, RunStore
from runtime.streams import name_token
from sluice.protocol import pack, unpack

log = structlog.get_logger("sluice.cancels")


class Cancels:
    def __init__(self, runs: RunStore, index: KeyValue, operations: Operations) -> None:
        self._runs = runs
        self._index = index
        self._ops = operations

    async def register(self, fn: FunctionDef, state: RunState) -> None:
        """Index ``fn``'s cancel rules for the new run ``state``."""
        for n, rule in enumerate(fn.raw.get("cancel_on") or []):
            timeout = rule.get("timeout_ms")
            entry = {"run": state.id, "event": rule["event"], "if": rule.get("if"),
                     "expires": state.created_at + timeout if timeout else None}
            await self._index.put(f"{name_token(rule['event'])}.{state.id}.{n}", pack(entry))

    async def on_events(self, events: list[dict[str, Any]]) -> int:
        """:meth:`on_event` for each of ``events``, in order (see :func:`for_indexed_names`)."""
        return await for_indexed_names(self._index, events, self.on_event)

    async def on_event(self, event: dict[str, Any]) -> int:
        """Cancel every run a rule for ``event`` matches; returns how many."""
        cancelled = 0
        for key in await self._index.keys(prefix=f"{name_token(event['name'])}."):
            entry = await self._index.get(key)
            if entry is None:
                continue
            rule = unpack(entry.value)
            state = await self._runs.load(rule["run"])
            if state is None or state.final or (rule.get("expires") and now_ms() > rule["expires"]):
                await self._index.delete(key)
                continue
            if rule["event"] != event["name"] or not matches(rule.get("if"), {"event": state.event, "async": event}):
                continue
            try:
                await self._ops.cancel(rule["run"])
            except RunNotFound:
                pass
            await self._index.delete(key)
            cancelled += 1
            log.info("run cancelled by event", run_id=rule["run"], event_id=event.get("id"), event=event["name"])
        return cancelled
