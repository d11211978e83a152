import os

import sluice

app = sluice.App("hostile")


@app.function(id="garbage", trigger=sluice.event("test/garbage"), retries=1)
def garbage(ctx: sluice.Context) -> None:
    # Write straight to the response channel, around the SDK: the host must not trust it.
    os.write(1, b"\xc1this is not msgpack")
    os._exit(0)


@app.function(id="crash", trigger=sluice.event("test/crash"), retries=1)
def crash(ctx: sluice.Context) -> None:
    print("about to crash")
    os._exit(3)


@app.function(id="fine", trigger=sluice.event("test/fine"))
def fine(ctx: sluice.Context) -> dict:
    return {"ok": ctx.step.run("one", lambda: 1)}
