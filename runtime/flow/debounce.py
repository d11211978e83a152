"""Debounce: one run after ``period`` passes with no new event (per key), with the last event.

Each event replaces the open window's event and moves its deadline to ``now + period``,
but never past ``cap = first event + timeout`` when a timeout is set, so a steady stream
of events still starts a run at least every ``timeout``. A fire is published for every
new deadline; only the fire carrying the window's current deadline closes it (see
:mod:`runtime.flow.windows`). An event that finds the open window past its deadline (its
fire is on the way) closes that window for its fire and opens a new one: it belongs to
the next run, not the one about to start.
"""

from __future__ import annotations

from typing import Any

from runtime.flow.options import Debounce, group, kv_key
from runtime.flow.store import CAS_TRIES, FlowBusyError, backoff, read, write
from runtime.flow.windows import Windows, empty
from runtime.ids import new_id


class Debouncer(Windows):
    async def hold(self, fqid: str, opt: Debounce, event: dict[str, Any]) -> None:
        """Keep ``event`` as the latest of its group's window and (re)arm the window's fire."""
        key = kv_key("d", fqid, group(opt.key, event))
        for attempt in range(CAS_TRIES):
            doc, rev = await read(self._kv, key)
            now = self._clock()
            doc = dict(doc or empty(fqid))
            closed = dict(doc.get("closed") or {})
            window = doc.get("open")
            if window is not None and int(window["due"]) <= now:
                closed[window["w"]] = window  # its fire will start it
                window = None
            if window is None:
                window = {"w": new_id(now), "since": now,
                          "cap": None if opt.timeout_ms is None else now + opt.timeout_ms}
            due = now + opt.period_ms if window["cap"] is None else min(now + opt.period_ms, int(window["cap"]))
            window = {**window, "events": [event], "due": due}
            if await write(self._kv, key, {**doc, "open": window, "closed": closed}, rev):
                await self.fire_at(fqid, key, window)
                return
            await backoff(attempt)
        raise FlowBusyError(f"debounce record {key!r} kept changing; try again")
