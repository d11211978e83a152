import time

import sluice

app = sluice.App("slow")


def nap(n: int) -> int:
    time.sleep(1.5)
    return n


@app.function(id="three-naps", trigger=sluice.event("test/slow"))
def three_naps(ctx: sluice.Context) -> list:
    return [ctx.step.run("nap-1", nap, 1), ctx.step.run("nap-2", nap, 2), ctx.step.run("nap-3", nap, 3)]
