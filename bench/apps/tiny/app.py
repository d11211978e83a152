"""The benchmark's tiny guest app: one function, one small step per call.

``work`` runs one step that adds two numbers, so one call answers with one ``step``
op, the smallest real unit of work a Sluice host asks a guest for. ``kernel`` reports
the guest's ``/proc/version``: the harness calls it once to check which runtime
(runc or gVisor) a container really ran under.
"""

from __future__ import annotations

import sluice

app = sluice.App("bench")


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


@app.function(id="work", trigger="bench/work", retries=0)
def work(ctx: sluice.Context) -> object:
    return ctx.step.run("add", add, ctx.event.data.get("a", 1), ctx.event.data.get("b", 2))


@app.function(id="kernel", trigger="bench/kernel", retries=0)
def kernel(ctx: sluice.Context) -> dict[str, str]:
    with open("/proc/version") as f:
        return {"version": f.read().strip()}
