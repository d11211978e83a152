"""Batch: events gather per key until ``max_size`` of them or ``timeout`` after the first,
then ONE run starts with all of them (``ctx.events``, oldest first; ``ctx.event`` is the first).

The first event opens a window due ``timeout`` later; its fire is published then (and
again with each event: the stream drops the copies, and a fire lost to a crash is re-sent).
The event that fills the window closes it at once and publishes an immediate fire. An
event already held (a redelivery) is not added twice; its window's fire is re-published.

Cost: the whole window is one KV value, rewritten on every event, so a batch of ``n``
events writes O(n²) bytes in total. Fine for the small-event, size-in-the-hundreds
batches this is made for; see docs/flow-control.md.
"""

from __future__ import annotations

from typing import Any

from runtime.flow.options import Batch, group, kv_key
from runtime.flow.store import CAS_TRIES, FlowBusyError, backoff, read, write
from runtime.flow.windows import Windows, empty, holds
from runtime.ids import new_id


class Batcher(Windows):
    async def hold(self, fqid: str, opt: Batch, event: dict[str, Any]) -> None:
        """Add ``event`` to its group's open window (opening one if needed)."""
        key = kv_key("b", fqid, group(opt.key, event))
        event_id = str(event.get("id") or "")
        for attempt in range(CAS_TRIES):
            doc, rev = await read(self._kv, key)
            now = self._clock()
            doc = dict(doc or empty(fqid))
            held = holds(doc, event_id) if event_id else None
            if held is not None:
                is_open = doc.get("open") is not None and doc["open"]["w"] == held["w"]
                await self.fire_at(fqid, key, held, now=not is_open, tag="" if is_open else new_id())
                return
            closed = dict(doc.get("closed") or {})
            window = doc.get("open")
            if window is not None and int(window["due"]) <= now:
                closed[window["w"]] = window  # its timeout fire will start it
                window = None
            if window is None:
                window = {"w": new_id(now), "since": now, "due": now + opt.timeout_ms, "cap": None, "events": []}
            window = {**window, "events": [*window["events"], event]}
            full = len(window["events"]) >= opt.max_size
            if full:
                closed[window["w"]] = window
            if await write(self._kv, key, {**doc, "open": None if full else window, "closed": closed}, rev):
                if full:
                    await self.fire_at(fqid, key, window, now=True, tag="full")
                else:  # every event re-publishes the timer fire (a duplicate the stream drops)
                    await self.fire_at(fqid, key, window)
                return
            await backoff(attempt)
        raise FlowBusyError(f"batch record {key!r} kept changing; try again")
