"""Concurrency: at most ``limit`` steps of a function executing at once (per key), cluster-wide.

A record per (function, group) holds the set of live *leases*: ``{"l": {lease id:
expires ms}}``. Taking a slot is a CAS that first drops expired leases, then adds one if
fewer than ``limit`` remain. A holder renews its lease every ``ttl/3`` while its step runs
and removes it when done, so a node that dies mid-step frees its slots ``ttl`` later
(default 30 s) instead of holding them forever. What is counted is steps executing in a
sandbox, not runs: a sleeping or waiting run holds nothing.

A step that finds no free slot gets a :class:`Wait` a fraction of a second ahead (sooner
for a higher priority, never later than the earliest lease could expire); waiters are not
served in order. Clocks of all nodes are assumed roughly in sync (NTP): an expiry is a
wall-clock time, and a node whose clock runs ``d`` ahead frees others' slots ``d`` early.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import structlog

from bus import KeyValue
from runtime.flow.decisions import Wait
from runtime.flow.options import Concurrency, group, kv_key
from runtime.flow.store import CAS_TRIES, FlowBusyError, backoff, read, write
from runtime.ids import new_id

log = structlog.get_logger("sluice.flow")

RETRY_MIN_MS = 100
RETRY_MAX_MS = 500


@dataclass(frozen=True)
class Lease:
    key: str
    id: str


class Leases:
    """Lease sets in ``kv``; ``ttl_ms`` is how long a lease outlives its holder's last renewal."""

    def __init__(self, kv: KeyValue, clock: Callable[[], int], ttl_ms: int) -> None:
        if ttl_ms < 30:
            raise ValueError(f"lease ttl must be at least 30 ms, got {ttl_ms}")
        self._kv = kv
        self._clock = clock
        self.ttl_ms = ttl_ms

    async def acquire(self, fqid: str, opt: Concurrency, event: dict[str, Any], priority: int = 0) -> Lease | Wait:
        """A lease on one of ``opt.limit`` slots of ``fqid``'s group for ``event``, or when to try again."""
        key = kv_key("c", fqid, group(opt.key, event))
        lease = Lease(key, new_id())
        for attempt in range(CAS_TRIES):
            doc, rev = await read(self._kv, key)
            now = self._clock()
            live = {k: v for k, v in ((doc or {}).get("l") or {}).items() if v > now}
            if len(live) >= opt.limit:
                return Wait(now + self._retry_ms(priority, min(live.values()) - now), "concurrency")
            live[lease.id] = now + self.ttl_ms
            if await write(self._kv, key, {"l": live}, rev):
                return lease
            await backoff(attempt)
        return Wait(self._clock() + self._retry_ms(priority, RETRY_MAX_MS), "concurrency")

    async def renew(self, lease: Lease, limit: int) -> bool:
        """Push ``lease``'s expiry ``ttl`` ahead. ``False`` if it had expired and its slot was
        taken meanwhile (the step keeps running, briefly over the limit; logged)."""
        for attempt in range(CAS_TRIES):
            doc, rev = await read(self._kv, lease.key)
            now = self._clock()
            live = {k: v for k, v in ((doc or {}).get("l") or {}).items() if v > now}
            if lease.id not in live and len(live) >= limit:
                log.warning("a concurrency lease expired while its step ran (a stalled node?)", key=lease.key)
                return False
            live[lease.id] = now + self.ttl_ms
            if await write(self._kv, lease.key, {"l": live}, rev):
                return True
            await backoff(attempt)
        raise FlowBusyError(f"could not renew lease on {lease.key!r}")

    async def release(self, lease: Lease) -> None:
        """Free ``lease``'s slot (a lease already gone is fine). After ``CAS_TRIES`` lost races
        it gives up: the lease then frees itself when it expires."""
        for attempt in range(CAS_TRIES):
            doc, rev = await read(self._kv, lease.key)
            now = self._clock()
            live = {k: v for k, v in ((doc or {}).get("l") or {}).items() if v > now and k != lease.id}
            if await write(self._kv, lease.key, {"l": live} if live else None, rev):
                return
            await backoff(attempt)
        log.warning("could not release a concurrency lease; it expires on its own", key=lease.key)

    @staticmethod
    def _retry_ms(priority: int, cap_ms: int) -> int:
        # Higher priority comes back sooner (600 -> half the wait), so it tends to win the next free slot.
        scale = 1.0 - priority / 1200
        wait = random.uniform(RETRY_MIN_MS, RETRY_MAX_MS) * scale
        return max(1, min(int(wait), max(cap_ms, 1)))


class Slot:
    """The right to execute one step now. ``async with slot:`` renews its lease while the body
    runs and releases it on exit (also on error or cancellation). A slot of a function
    without a concurrency limit holds nothing and costs nothing."""

    def __init__(self, leases: Leases | None = None, lease: Lease | None = None, limit: int = 0) -> None:
        self._leases = leases
        self.lease = lease
        self._limit = limit
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Slot:
        if self._leases is not None and self.lease is not None:
            self._renewer = asyncio.create_task(self._renew_forever(self._leases, self.lease), name="flow-lease")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.release()

    async def release(self) -> None:
        """Stop renewing and free the slot; calling it again does nothing."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        lease, self.lease = self.lease, None
        if self._leases is not None and lease is not None:
            await self._leases.release(lease)

    async def _renew_forever(self, leases: Leases, lease: Lease) -> None:
        every = leases.ttl_ms / 3000
        while True:  # bounded by the step: cancelled by release()
            await asyncio.sleep(every)
            try:
                await leases.renew(lease, self._limit)
            except Exception as exc:  # a bus hiccup: the next renewal (ttl/3 later) may succeed
                log.warning("renewing a concurrency lease failed", key=lease.key, error=str(exc))
