"""Timing loops and statistics shared by every benchmark family.

Every loop is bounded twice: by a number of iterations and by a wall-clock budget
(seconds), whichever ends it first; warm-up calls come first and are not recorded.
Times come from :func:`time.perf_counter_ns` and are kept in nanoseconds until they
are summarised in milliseconds.

A call returns a *verify* function, run after the clock stops: it checks the answer
and raises :class:`BenchError` with the reason if it is wrong (the row is then marked
``error``), since a benchmark of something that does not work measures nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

#: Checks what a call got back (untimed); raises BenchError if it was wrong.
Verify = Callable[[], None]
#: A call to time; what it returns is run after the clock stops.
Call = Callable[[], Awaitable[Verify]]


class BenchError(Exception):
    """A benchmarked call failed or answered wrongly; the message says how."""


@dataclass(frozen=True)
class Budget:
    """How much to measure: at most ``iterations`` calls and ``seconds`` of wall clock,
    after ``warmup`` unrecorded calls. At least ``min_iterations`` are recorded even if
    the time budget runs out first (so a percentile always has something under it).
    ``pause_s``: an untimed pause after each call (and warm-up call), for rows that
    measure a call arriving at a guest that had time to get ready."""

    iterations: int
    seconds: float
    warmup: int = 3
    min_iterations: int = 3
    pause_s: float = 0.0


async def warm_up(call: Call, count: int, pause_s: float = 0.0) -> None:
    for _ in range(count):
        (await call())()
        if pause_s:
            await asyncio.sleep(pause_s)


async def measure(call: Call, budget: Budget) -> list[int]:
    """Durations (ns) of up to ``budget.iterations`` sequential calls of ``call``,
    ``budget.pause_s`` apart."""
    await warm_up(call, budget.warmup, budget.pause_s)
    samples: list[int] = []
    deadline = time.monotonic() + budget.seconds
    while len(samples) < budget.iterations:
        if len(samples) >= budget.min_iterations and time.monotonic() >= deadline:
            break
        start = time.perf_counter_ns()
        verify = await call()
        samples.append(time.perf_counter_ns() - start)
        verify()
        if budget.pause_s:
            await asyncio.sleep(budget.pause_s)
    return samples


async def measure_interleaved(calls: list[Call], budget: Budget) -> list[list[int]]:
    """Durations (ns) of each of ``calls``, run in turn (A, B, A, B, ...).

    Interleaving spreads any drift of a shared machine (another job starting, the page
    cache warming) evenly over a row and its peer, which sequential blocks would not.
    ``budget.iterations`` counts rounds, so each call gets that many samples at most;
    ``budget.pause_s`` is ignored (interleaving already spaces calls out).
    """
    for call in calls:
        await warm_up(call, budget.warmup)
    samples: list[list[int]] = [[] for _ in calls]
    deadline = time.monotonic() + budget.seconds
    rounds = 0
    while rounds < budget.iterations:
        if rounds >= budget.min_iterations and time.monotonic() >= deadline:
            break
        for call, into in zip(calls, samples, strict=True):
            start = time.perf_counter_ns()
            verify = await call()
            into.append(time.perf_counter_ns() - start)
            verify()
        rounds += 1
    return samples


def percentile(sorted_ns: list[int], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted samples, linearly interpolated (ns)."""
    if not sorted_ns:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0-100, got {q}")
    pos = (len(sorted_ns) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_ns) - 1)
    return sorted_ns[lo] + (sorted_ns[hi] - sorted_ns[lo]) * (pos - lo)


def summarize(samples_ns: list[int]) -> dict[str, float | int]:
    """n, p50/p95/p99, mean, min and max of ``samples_ns``, in milliseconds."""
    ordered = sorted(samples_ns)
    ms = 1e6
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 50) / ms, 4),
        "p95_ms": round(percentile(ordered, 95) / ms, 4),
        "p99_ms": round(percentile(ordered, 99) / ms, 4),
        "mean_ms": round(sum(ordered) / len(ordered) / ms, 4),
        "min_ms": round(ordered[0] / ms, 4),
        "max_ms": round(ordered[-1] / ms, 4),
    }


class TimingsMean:
    """Running means of ``Result.timings`` entries (ms), e.g. ``acquire_ms`` and ``run_ms``."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, timings: Mapping[str, float]) -> None:
        for key, value in timings.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self._sums[key] = self._sums.get(key, 0.0) + float(value)
                self._counts[key] = self._counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: round(self._sums[k] / self._counts[k], 4) for k in sorted(self._sums)}


@dataclass(frozen=True)
class Settings:
    """Options every family sees: ``quick`` (a few iterations, for the smoke test)."""

    quick: bool = False

    def pick(self, full: Budget, quick: Budget) -> Budget:
        """``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full
