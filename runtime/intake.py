"""The executor's intake: step jobs taken in turns between functions, not first come first served.

Each function's jobs have their own subject (:func:`runtime.streams.job_subject`) and their
own durable consumer (``executor-<token>``), which every executor node shares. The intake
keeps a *lane* per function: a few of its jobs fetched ahead, refilled by the lane's own
long-polling fetch. :meth:`Intake.next` hands out the next job round-robin among the lanes
that have one ready, so while function A has 10,000 runs queued, function B's job waits for
at most one job of every other function with work, not for A's whole backlog.

Lanes follow the registry: :meth:`Intake.sync` (every :data:`SYNC_S`, and when the node
loads apps) opens a lane for each registered function and retires the lanes of functions
gone. Jobs on a subject no registered function owns — runs of a function removed since they
were queued, or jobs on the single pre-split subject ``sluice.steps.run`` — are found by a
sweep every :data:`SWEEP_S` (:meth:`bus.base.Bus.subject_counts`) and get a lane until they
are gone, so the executor settles them as it always has (a run whose function is gone fails).

Holding jobs: a fetched job not yet handed out is unacked and out of other nodes' reach for
the ack wait (hours). So the lanes together fetch ahead only as many jobs as the executor
has free slots, except that each lane keeps one (its turn when a slot frees); :meth:`halt`
naks what is held, and a fetch it cancels hands its messages back to the consumer, whose
``close`` naks them.

Idle cost: per function and node, one long poll (:data:`LONG_POLL_S`) open on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

import structlog

from bus import Bus, Consumer, Message
from runtime.limits import RuntimeLimits
from runtime.registry import Registry
from runtime.streams import JOBS_PREFIX, LEGACY_JOBS_SUBJECT, STEPS_STREAM, executor_consumer, job_subject

log = structlog.get_logger("sluice.intake")

#: How long one fetch waits on the server for a lane's next job.
LONG_POLL_S = 30.0
#: How often the lanes are matched to the registry (a local comparison, no bus traffic).
SYNC_S = 1.0
#: How often the job subjects are swept for jobs no lane reads (one stream-info request).
SWEEP_S = 10.0
#: After a failed fetch, wait this long before the next.
RETRY_S = 0.5
#: The most jobs a lane fetches ahead (while the executor has that many slots free).
PREFETCH = 8


class _Lane:
    """One function's jobs: its consumer, the jobs fetched and not handed out, its fetch task."""

    def __init__(self, subject: str, consumer: Consumer) -> None:
        self.subject = subject
        self.consumer = consumer
        self.ready: deque[Message] = deque()
        self.room = asyncio.Event()  # set when a job was handed out: fetch more
        self.task: asyncio.Task[None] | None = None


class Intake:
    """``free()`` tells how many jobs the executor could start now (its free slots)."""

    def __init__(self, bus: Bus, registry: Registry, limits: RuntimeLimits, *, free: Callable[[], int],
                 prefetch: int = PREFETCH, sync_s: float = SYNC_S, sweep_s: float = SWEEP_S) -> None:
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        self._bus = bus
        self._registry = registry
        self._limits = limits
        self._free = free
        self._prefetch = prefetch
        self._sync_s = sync_s
        self._sweep_s = sweep_s
        self._lanes: dict[str, _Lane] = {}
        self._turns: deque[str] = deque()  # lane subjects in round-robin order; the next turn first
        self._orphans: set[str] = set()  # job subjects with jobs and no registered function
        self._ready = asyncio.Event()  # set when some lane got jobs
        self._sync_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._halted = False

    @property
    def subjects(self) -> list[str]:
        """The job subjects read now, in turn order."""
        return list(self._turns)

    async def start(self) -> None:
        await self._sweep()
        self._task = asyncio.create_task(self._keep_in_sync(), name="executor-intake")

    async def next(self) -> Message | None:
        """The next job, in turns between functions; waits for one. ``None`` once halted."""
        while not self._halted:
            lane = self._pick()
            if lane is not None:
                msg = lane.ready.popleft()
                lane.room.set()
                return msg
            self._ready.clear()
            await self._ready.wait()
        return None

    def _pick(self) -> _Lane | None:
        """The first lane in turn order with a job ready; it (and every lane passed over)
        moves to the back, so each lane with work gets one turn per round."""
        for _ in range(len(self._turns)):
            subject = self._turns[0]
            self._turns.rotate(-1)
            lane = self._lanes.get(subject)
            if lane is not None and lane.ready:
                return lane
        return None

    async def sync(self) -> None:
        """Open a lane for every registered function and every orphaned job subject; retire
        the others (their held jobs are nak'ed)."""
        async with self._sync_lock:
            if self._halted:
                return
            wanted = {job_subject(fn.fqid) for fn in self._registry.all()} | self._orphans
            for subject in sorted(wanted - self._lanes.keys()):
                await self._open(subject)
            for subject in sorted(self._lanes.keys() - wanted):
                await self._retire(subject)

    async def halt(self) -> None:
        """Hand out no more jobs: stop fetching, nak the jobs held, wake :meth:`next`.
        The consumers stay bound (jobs handed out are still acked through them) until :meth:`close`."""
        self._halted = True
        self._ready.set()
        async with self._sync_lock:  # not while a sync opens or retires a lane
            tasks = [t for t in (self._task, *(lane.task for lane in self._lanes.values())) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        for lane in self._lanes.values():
            lane.task = None
            await _hand_back(lane)

    async def close(self) -> None:
        await self.halt()
        lanes = list(self._lanes.values())
        self._lanes.clear()
        self._turns.clear()
        for lane in lanes:
            with contextlib.suppress(Exception):
                await lane.consumer.close()

    async def _keep_in_sync(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self._sweep_s
        while True:
            await asyncio.sleep(self._sync_s)
            try:
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self._sweep_s
                    await self._sweep()
                else:
                    await self.sync()
            except Exception as exc:
                log.warning("matching job lanes to the registry failed; retrying", error=str(exc))

    async def _sweep(self) -> None:
        """Find the job subjects holding jobs that no registered function's lane reads."""
        try:
            counts = await self._bus.subject_counts(STEPS_STREAM, LEGACY_JOBS_SUBJECT + ".>")
            legacy = await self._bus.subject_counts(STEPS_STREAM, LEGACY_JOBS_SUBJECT)
        except Exception as exc:
            log.warning("sweeping the job subjects failed; keeping the lanes as they are", error=str(exc))
        else:
            registered = {job_subject(fn.fqid) for fn in self._registry.all()}
            held = counts.keys() | legacy.keys()
            self._orphans = {s for s in held if s not in registered
                             and (s == LEGACY_JOBS_SUBJECT or s.startswith(JOBS_PREFIX + "."))}
        await self.sync()

    async def _open(self, subject: str) -> None:
        try:
            consumer = await self._bus.consumer(executor_consumer(self._limits, subject))
        except Exception as exc:
            log.warning("opening a job lane failed; retrying at the next sync", subject=subject, error=str(exc))
            return
        lane = _Lane(subject, consumer)
        self._lanes[subject] = lane
        self._turns.append(subject)
        lane.task = asyncio.create_task(self._fill(lane), name=f"executor-lane-{subject}")

    async def _retire(self, subject: str) -> None:
        lane = self._lanes.pop(subject)
        self._turns.remove(subject)
        if lane.task is not None:
            lane.task.cancel()
            await asyncio.gather(lane.task, return_exceptions=True)
        await _hand_back(lane)
        with contextlib.suppress(Exception):
            await lane.consumer.close()

    def _want(self, lane: _Lane) -> int:
        """How many more jobs ``lane`` should fetch: one to be able to take its turn, and
        more (up to ``prefetch``) while the lanes together hold fewer than the free slots."""
        have = len(lane.ready)
        spare = self._free() - sum(len(other.ready) for other in self._lanes.values())
        return max(1 - have, min(spare, self._prefetch - have))

    async def _fill(self, lane: _Lane) -> None:
        """Keep ``lane`` stocked (see :meth:`_want`)."""
        failing = False
        while True:
            want = self._want(lane)
            if want <= 0:
                lane.room.clear()
                await lane.room.wait()
                continue
            try:
                msgs = await lane.consumer.fetch(want, LONG_POLL_S)
            except Exception as exc:
                # Every lane fails at once while the bus is away: say so once per lane, not twice a second.
                (log.debug if failing else log.warning)("fetching jobs failed; retrying",
                                                        subject=lane.subject, error=str(exc))
                failing = True
                await asyncio.sleep(RETRY_S)
                continue
            failing = False
            if msgs:
                lane.ready.extend(msgs)
                self._ready.set()


async def _hand_back(lane: _Lane) -> None:
    """Nak the jobs ``lane`` holds, so any node can take them now rather than after the ack wait."""
    while lane.ready:
        msg = lane.ready.popleft()
        with contextlib.suppress(Exception):
            await msg.nak()
