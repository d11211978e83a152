"""Rate limit: at most ``limit`` runs per ``period`` per key; events past it start nothing.

As Inngest documents it, the period begins with the first event admitted: the record
``{"s": window start ms, "n": admitted, "ids": [...]}`` counts admissions in the window
that started at ``s``; the first event after ``s + period`` opens a new window. So within
any one window at most ``limit`` runs start (two back-to-back windows may admit up to
``2 * limit`` across their boundary, as with any fixed window).

The last few admitted event ids are kept so a redelivered event (the scheduler crashed
after admitting it, before acking it) is admitted again instead of being counted twice
or refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bus import KeyValue
from runtime.flow.options import RateLimit, group, kv_key
from runtime.flow.store import CAS_TRIES, FlowBusyError, backoff, read, write

REMEMBERED_IDS = 64


class RateLimits:
    def __init__(self, kv: KeyValue, clock: Callable[[], int]) -> None:
        self._kv = kv
        self._clock = clock

    async def admit(self, fqid: str, opt: RateLimit, event: dict[str, Any]) -> bool:
        """Whether ``event`` may start a run of ``fqid`` (counting it if so)."""
        key = kv_key("r", fqid, group(opt.key, event))
        event_id = str(event.get("id") or "")
        for attempt in range(CAS_TRIES):
            doc, rev = await read(self._kv, key)
            now = self._clock()
            if doc is None or now >= int(doc["s"]) + opt.period_ms:
                doc = {"s": now, "n": 0, "ids": []}
            ids: list[str] = list(doc.get("ids") or [])
            if event_id and event_id in ids:
                return True
            if int(doc["n"]) >= opt.limit:
                return False
            doc = {"s": doc["s"], "n": int(doc["n"]) + 1, "ids": [*ids, event_id][-REMEMBERED_IDS:]}
            if await write(self._kv, key, doc, rev):
                return True
            await backoff(attempt)
        raise FlowBusyError(f"rate-limit record {key!r} kept changing; try again")
