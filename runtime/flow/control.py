"""FlowControl: the one object the scheduler and executor talk to (see the package docstring)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import structlog

from bus import Bus, Consumer, Message
from runtime.flow.batch import Batcher
from runtime.flow.concurrency import Leases, Slot
from runtime.flow.debounce import Debouncer
from runtime.flow.decisions import Admission, Start, Wait
from runtime.flow.options import FlowOptions, OptionsCache
from runtime.flow.priority import priority_of
from runtime.flow.rate_limit import RateLimits
from runtime.flow.store import FLOW_BUCKET, Fire, FlowBusyError, fire_consumer
from runtime.flow.throttle import Throttles
from runtime.ids import now_ms
from runtime.registry import FunctionDef
from runtime.state import RunState
from sluice.protocol import ProtocolError

log = structlog.get_logger("sluice.flow")

#: Creates the run a :class:`Start` describes, idempotently (same ``run_id``: one run), and
#: enqueues its first job. Raising leaves the fire unacked: it comes again.
Starter = Callable[[FunctionDef, Start], Awaitable[None]]
Lookup = Callable[[str], FunctionDef | None]

FIRE_FETCH = 64
BUSY_RETRY_MS = 200


@dataclass(frozen=True)
class _Parts:
    leases: Leases
    throttles: Throttles
    rate_limits: RateLimits
    debouncer: Debouncer
    batcher: Batcher


class FlowControl:
    """Flow control for every function, state in ``bus`` (KV bucket ``sluice-flow`` and the
    subject ``sluice.steps.flow``). ``lookup`` finds a function by ``app/fn`` id (the
    registry's ``get``). ``lease_ttl_s``: how long a concurrency slot of a crashed node stays
    taken. ``clock``: ms since epoch (tests may move it). Lifecycle: :meth:`start` /
    :meth:`stop` (twice is safe) or ``async with``."""

    def __init__(self, bus: Bus, lookup: Lookup, *, lease_ttl_s: float = 30.0,
                 clock: Callable[[], int] = now_ms) -> None:
        self._bus = bus
        self._lookup = lookup
        self._clock = clock
        self._lease_ttl_ms = int(lease_ttl_s * 1000)
        self._options = OptionsCache()
        self._parts: _Parts | None = None
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # lifecycle

    async def start(self, starter: Starter | None = None) -> None:
        """Bind the KV bucket; with ``starter`` (nodes running the scheduler), also consume
        fire messages and start the runs of closed debounce and batch windows through it."""
        if self._parts is None:
            kv = await self._bus.kv(FLOW_BUCKET)
            self._parts = _Parts(
                leases=Leases(kv, self._clock, self._lease_ttl_ms), throttles=Throttles(kv, self._clock),
                rate_limits=RateLimits(kv, self._clock), debouncer=Debouncer(self._bus, kv, self._clock, "debounce"),
                batcher=Batcher(self._bus, kv, self._clock, "batch"))
        if starter is not None and self._task is None:
            self._stopping.clear()
            self._consumer = await self._bus.consumer(fire_consumer())
            self._task = asyncio.create_task(self._fire_loop(self._consumer, starter), name="flow-fires")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.close()
            self._consumer = None

    async def __aenter__(self) -> FlowControl:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def _p(self) -> _Parts:
        if self._parts is None:
            raise RuntimeError("FlowControl is not started: call start() first")
        return self._parts

    # options

    def check(self, fn: FunctionDef) -> FlowOptions:
        """``fn``'s flow options; raises :class:`FlowOptionError` naming a bad one (call it at
        registration, so a bad function is refused before any event reaches it)."""
        return self._options.get(fn)

    def priority(self, fn: FunctionDef, event: dict[str, Any]) -> int:
        """``fn``'s priority for ``event``: -600..600 (seconds of head start), 0 by default."""
        return priority_of(self.check(fn).priority, event)

    # scheduler side

    async def admit(self, fn: FunctionDef, event: dict[str, Any]) -> Admission:
        """What to do with ``event`` for ``fn``: START a run now, SKIP it (rate limited), or
        nothing now because it is HELD by a debounce or batch window. Raises
        :class:`FlowBusyError` under extreme contention and bus errors as they come (leave
        the event unacked: a redelivery is admitted the same way, idempotently)."""
        opts = self.check(fn)
        if opts.rate_limit is not None and not await self._p.rate_limits.admit(fn.fqid, opts.rate_limit, event):
            log.info("event skipped: rate limited", function=fn.fqid, event_id=event.get("id"))
            return Admission.SKIP
        if opts.debounce is not None:
            await self._p.debouncer.hold(fn.fqid, opts.debounce, event)
            return Admission.HELD
        if opts.batch is not None:
            await self._p.batcher.hold(fn.fqid, opts.batch, event)
            return Admission.HELD
        return Admission.START

    async def on_fire(self, data: bytes) -> tuple[FunctionDef, Start] | None:
        """Handle one fire message body: the run to start now, or ``None`` (a stale fire, or
        the function is gone: its held events are dropped, with a warning). After the run
        exists, call :meth:`settle`. Raises ``ProtocolError`` for a malformed body."""
        fire = Fire.decode(data)
        windows = self._p.debouncer if fire.kind == "debounce" else self._p.batcher
        start = await windows.on_fire(fire)
        if start is None:
            return None
        fn = self._lookup(start.fn)
        if fn is None:
            log.warning("dropping held events of a function that is gone", function=start.fn,
                        events=len(start.events))
            await windows.settle(start.key, start.window)
            return None
        return fn, start

    async def settle(self, start: Start) -> None:
        """Forget the window of ``start``: its run exists. Safe to call twice."""
        windows = self._p.debouncer if start.kind == "debounce" else self._p.batcher
        await windows.settle(start.key, start.window)

    async def recover(self) -> int:
        """Re-send the fire of every open or closed window (after a crash; once per cluster
        start is enough, more is harmless). Returns how many fires were sent."""
        return await self._p.debouncer.recover("d.") + await self._p.batcher.recover("b.")

    # executor side

    async def acquire(self, fn: FunctionDef, state: RunState) -> Slot | Wait:
        """May ``state``'s next step execute now? A :class:`Slot` (use ``async with slot:``
        around the sandbox call) or a :class:`Wait` (run the job again at ``wait.at_ms``).
        Concurrency applies to every step; throttle only to a run's start."""
        opts = self.check(fn)
        prio = priority_of(opts.priority, state.event)
        slot = Slot()
        if opts.concurrency is not None:
            got = await self._p.leases.acquire(fn.fqid, opts.concurrency, state.event, prio)
            if isinstance(got, Wait):
                return got
            slot = Slot(self._p.leases, got, opts.concurrency.limit)
        if opts.throttle is None or state.started_at is not None:
            return slot
        try:
            at = await self._p.throttles.start_at(fn.fqid, opts.throttle, state.event, state.id)
        except FlowBusyError:
            at = self._clock() + BUSY_RETRY_MS
        except BaseException:
            await slot.release()
            raise
        if at > self._clock():
            await slot.release()
            return Wait(at, "throttle")
        return slot

    # the fire consumer

    async def _fire_loop(self, consumer: Consumer, starter: Starter) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await consumer.fetch(FIRE_FETCH, timeout_s=0.5)
            except Exception as exc:
                log.warning("fetching flow fires failed; retrying", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await self._handle(msg, starter)

    async def _handle(self, msg: Message, starter: Starter) -> None:
        try:
            got = await self.on_fire(msg.data)
        except ProtocolError as exc:
            log.error("dropping a malformed flow fire", error=str(exc))
            await msg.term()
            return
        except Exception as exc:
            log.warning("handling a flow fire failed; it comes again", error=str(exc))
            await msg.nak(1.0)
            return
        try:
            if got is not None:
                fn, start = got
                await starter(fn, start)
                await self.settle(start)
        except Exception:
            log.exception("starting a debounced or batched run failed; it comes again")
            await msg.nak(1.0)
            return
        await msg.ack()
