"""Family ``wasm-python``: one call of the tiny Python app (``bench/apps/tiny``) on CPython for WASI.

Rows:

* ``wasm.python.warm`` — ``WasmSandbox.run`` with ``Target.warm=True`` (a pre-started
  interpreter, when the sandbox has them), calls :data:`PACE_S` apart so the sandbox can
  have the next interpreter ready: the latency of a step that finds a warm guest;
  goal p50 ≤ 25 ms; peer: the fresh call.
* ``wasm.python.burst`` — the same, back to back: each call also competes with the
  start of the interpreter that replaces the one it used (a throughput-bound load on
  2 cores); peer: the fresh call.
* ``wasm.python.fresh`` — ``WasmSandbox.run`` with ``Target.warm=False``: a fresh
  interpreter per call, started by the sandbox (cached module, pre-linked, in-memory
  stdio, unpacked stdlib, precompiled SDK); peer: the naive call.
* ``wasm.python.naive`` — :class:`bench.naive_wasm.NaivePython`: a fresh interpreter per
  call with the whole WASI set-up per call (only the compiled module is reused).

One call is the ``work`` function running one step: one ``step`` op back.
"""

from __future__ import annotations

import asyncio

from bench import naive_wasm
from bench.guests import TINY_APP, WORK_REQUEST, check_work, sandbox_call, served_warm
from bench.measure import Budget, Settings, TimingsMean, Verify, measure, measure_interleaved
from bench.report import Goal, Row
from sandboxes.base import Limits, Target
from sandboxes.wasm import WasmSandbox, default_cache_dir

FAMILY = "wasm-python"
LIMITS = Limits(memory_mb=256, timeout_s=30.0)
#: Pause between paced warm calls (s): longer than an interpreter takes to start here.
PACE_S = 0.3
NOT_BUILT = "n/a (not built yet): Target.warm=True was served by a fresh interpreter (Result.warm is false)"


def rows() -> list[Row]:
    fresh, naive = "wasm.python.fresh", "wasm.python.naive"
    return [
        Row("wasm.python.warm", FAMILY,
            f"WasmSandbox.run, Target.warm=True, tiny Python app, one step; calls {PACE_S:g} s apart",
            peer=fresh, goal=Goal("p50_ms", 25.0, "p50 <= 25 ms")),
        Row("wasm.python.burst", FAMILY, "WasmSandbox.run, Target.warm=True, back-to-back calls", peer=fresh),
        Row(fresh, FAMILY, "WasmSandbox.run, Target.warm=False: fresh interpreter per call", peer=naive),
        Row(naive, FAMILY, "fresh interpreter, whole WASI set-up and temp-file stdio per call"),
    ]


async def run(settings: Settings) -> list[Row]:
    warm, burst, fresh, naive = rows()
    # Compiling CPython takes ~5 s the first time; cached on disk after that.
    peer = await asyncio.to_thread(naive_wasm.NaivePython, default_cache_dir() / "bench", TINY_APP)

    async def naive_call() -> Verify:
        out = peer.call(WORK_REQUEST)
        return lambda: check_work(out, naive.name)

    async with WasmSandbox() as sandbox:
        warm_target = Target("python", str(TINY_APP), warm=True)
        fresh_target = Target("python", str(TINY_APP), warm=False)
        await sandbox.prepare(warm_target)
        await sandbox.prepare(fresh_target)
        warm_timings, fresh_timings = TimingsMean(), TimingsMean()
        warm_call = sandbox_call(sandbox, warm_target, warm, warm_timings, check=check_work, limits=LIMITS)
        fresh_call = sandbox_call(sandbox, fresh_target, fresh, fresh_timings, check=check_work, limits=LIMITS)

        burst_timings = TimingsMean()
        burst_call = sandbox_call(sandbox, warm_target, burst, burst_timings, check=check_work, limits=LIMITS)
        if await served_warm(warm_call, warm, pause_s=PACE_S):
            budget = settings.pick(Budget(40, 12.0, warmup=3, pause_s=PACE_S),
                                   Budget(5, 2.0, warmup=1, pause_s=PACE_S))
            warm.samples_ns = await measure(warm_call, budget)
            budget = settings.pick(Budget(200, 8.0, warmup=5), Budget(5, 2.0, warmup=1))
            burst.samples_ns = await measure(burst_call, budget)
            for row, timings in ((warm, warm_timings), (burst, burst_timings)):
                row.extra["timings_mean_ms"] = timings.means()
                row.note = f"{row.extra['served_warm']} of {row.extra['calls']} calls served warm (Result.warm)"
        else:
            warm.mark("n/a", NOT_BUILT)
            burst.mark("n/a", NOT_BUILT)

        budget = settings.pick(Budget(40, 15.0, warmup=2), Budget(4, 3.0, warmup=1))
        fresh.samples_ns, naive.samples_ns = await measure_interleaved([fresh_call, naive_call], budget)
        fresh.extra["timings_mean_ms"] = fresh_timings.means()
    return [warm, burst, fresh, naive]
