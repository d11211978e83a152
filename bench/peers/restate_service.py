"""The workload as a Restate service (served by hypercorn in the peers' venv).

``Bench/run`` is a handler of three ``ctx.run_typed`` steps, each journaled by the
Restate server before the next starts; it returns ``{"t0", "t2"}`` like the Sluice
function. Serve with ``hypercorn bench.peers.restate_service:app``.
"""

from __future__ import annotations

import time
from typing import Any

import restate  # type: ignore[import-not-found, unused-ignore]

bench = restate.Service("Bench")


def now() -> float:
    return time.time()


def noop() -> None:
    return None


@bench.handler()  # type: ignore[untyped-decorator, unused-ignore]
async def run(ctx: Any, req: dict[str, Any]) -> dict[str, float]:
    t0 = await ctx.run_typed("first", now)
    await ctx.run_typed("second", noop)
    t2 = await ctx.run_typed("third", now)
    return {"t0": t0, "t2": t2}


app = restate.app(services=[bench])
