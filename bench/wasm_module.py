"""Family ``wasm``: one call of a tiny WASI module (``bench/apps/done.wat``).

Rows:

* ``wasm.module.warm`` — ``WasmSandbox.run`` with ``Target.warm=True`` (the default: a
  pre-started instance if the driver keeps them for modules, else whatever its fastest
  path is); goal p50 ≤ 0.3 ms; peer: the naive call. Always measured: the goal is for
  the step as a user gets it. The note says how many calls ``Result.warm`` called warm.
* ``wasm.module.fresh`` — ``WasmSandbox.run`` with ``Target.warm=False`` (a fresh
  instance of the cached, pre-linked module); peer: the naive call.
* ``wasm.module.naive`` — :func:`bench.naive_wasm.module_call`: new engine, compile,
  linker, store and WASI with temp-file stdio, per call.

Each row is measured in its own block (no interleaving: see :func:`run`). Each time is
the whole call as a host sees it: from ``await sandbox.run(...)`` to its
result (thread-pool hop included), or the naive function's call and return.
"""

from __future__ import annotations

from bench import naive_wasm
from bench.guests import DONE_WAT, WORK_REQUEST, check_done, sandbox_call, served_warm
from bench.measure import Budget, Settings, TimingsMean, Verify, measure
from bench.report import Goal, Row
from sandboxes.base import Limits, Target
from sandboxes.wasm import WasmSandbox

FAMILY = "wasm"
LIMITS = Limits(memory_mb=64, timeout_s=10.0)


def rows() -> list[Row]:
    naive = "wasm.module.naive"
    return [
        Row("wasm.module.warm", FAMILY, "WasmSandbox.run, Target.warm=True, tiny WAT module",
            peer=naive, goal=Goal("p50_ms", 0.3, "p50 <= 0.3 ms")),
        Row("wasm.module.fresh", FAMILY, "WasmSandbox.run, Target.warm=False, tiny WAT module", peer=naive),
        Row(naive, FAMILY, "fresh Engine+compile+Linker+Store+WASI (temp-file stdio) per call"),
    ]


async def run(settings: Settings) -> list[Row]:
    warm, fresh, naive = rows()
    wat = DONE_WAT.read_text()

    async def naive_call() -> Verify:
        out = naive_wasm.module_call(wat, WORK_REQUEST)
        return lambda: check_done(out, naive.name)

    async with WasmSandbox() as sandbox:
        warm_target = Target("module", str(DONE_WAT), warm=True)
        fresh_target = Target("module", str(DONE_WAT), warm=False)
        await sandbox.prepare(warm_target)
        await sandbox.prepare(fresh_target)
        warm_timings, fresh_timings = TimingsMean(), TimingsMean()
        warm_call = sandbox_call(sandbox, warm_target, warm, warm_timings, check=check_done, limits=LIMITS)
        fresh_call = sandbox_call(sandbox, fresh_target, fresh, fresh_timings, check=check_done, limits=LIMITS)

        await served_warm(warm_call, warm, tries=3, pause_s=0.05)  # let a pool fill, if there is one
        budget = settings.pick(Budget(3000, 10.0, warmup=200), Budget(30, 2.0, warmup=5))
        warm.extra.update(calls=0, served_warm=0)
        warm.samples_ns = await measure(warm_call, budget)
        warm.extra["timings_mean_ms"] = warm_timings.means()
        warm.note = f"{warm.extra['served_warm']} of {warm.extra['calls']} calls served warm (Result.warm)"

        budget = settings.pick(Budget(2000, 6.0, warmup=100), Budget(20, 2.0, warmup=3))
        fresh.samples_ns = await measure(fresh_call, budget)
        fresh.extra["timings_mean_ms"] = fresh_timings.means()
    # In its own block, not interleaved: at a fraction of a millisecond, what one call
    # leaves in the CPU caches (a whole new engine, here) would be charged to the next.
    budget = settings.pick(Budget(600, 6.0, warmup=20), Budget(20, 2.0, warmup=3))
    naive.samples_ns = await measure(naive_call, budget)
    return [warm, fresh, naive]
