"""Throttle: at most ``limit`` run starts per ``period`` (per key); the excess waits, in order.

GCRA (the generic cell rate algorithm) with *reservations*. Starts are spaced one
emission interval ``T = period / limit`` apart; ``burst`` of them may start at once
(tolerance ``(burst - 1) * T``). The record ``{"tat": ms}`` holds the theoretical arrival
time of the next start. Each run that wants to start reserves the next free time
``max(now, tat - tolerance)`` and pushes ``tat`` one ``T`` on, so runs start in the order
they asked, none is dropped, and any window of ``period`` sees at most
``limit + burst - 1`` starts (``limit`` with the default burst of 1).

A run's reservation is remembered under ``tr.<run id>`` until it is used, so a job that
comes back (the delayed retry, a redelivery, a recovery re-send) finds its place instead of
queueing again. It is consumed when the run is let through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bus import KeyValue
from runtime.flow.options import Throttle, group, kv_key
from runtime.flow.store import CAS_TRIES, FlowBusyError, backoff, read, write


class Throttles:
    def __init__(self, kv: KeyValue, clock: Callable[[], int]) -> None:
        self._kv = kv
        self._clock = clock

    async def start_at(self, fqid: str, opt: Throttle, event: dict[str, Any], run_id: str) -> int:
        """When run ``run_id`` may start (ms since epoch; ``<= now`` means now, and its
        reservation is then used up). Idempotent per run until it is let through."""
        mine = f"tr.{run_id}"
        doc, rev = await read(self._kv, mine)
        if doc is not None:
            at = int(doc["at"])
            if at > self._clock():
                return at
            # Used up. Only this run's own jobs touch its record, so a plain delete is safe.
            await self._kv.delete(mine)
            return at
        at = await self._reserve(kv_key("t", fqid, group(opt.key, event)), opt)
        # Remembered only when there is a wait; a crash before the write costs one spare slot.
        if at > self._clock() and not await write(self._kv, mine, {"at": at}, rev):
            again, _ = await read(self._kv, mine)  # a twin of this job got there first: share its place
            return int(again["at"]) if again is not None else at
        return at

    async def _reserve(self, key: str, opt: Throttle) -> int:
        interval = opt.period_ms / opt.limit
        tolerance = (opt.burst - 1) * interval
        for attempt in range(CAS_TRIES):
            doc, rev = await read(self._kv, key)
            now = self._clock()
            tat = float(doc["tat"]) if doc is not None else float(now)
            at = max(float(now), tat - tolerance)
            if await write(self._kv, key, {"tat": max(tat, at) + interval}, rev):
                return int(at + 0.999)  # round up: never start a fraction early
            await backoff(attempt)
        raise FlowBusyError(f"throttle record {key!r} kept changing; try again")
