import sluice

app = sluice.App("flaky")


def boom() -> None:
    raise RuntimeError("the disk is on fire")


@app.function(id="always-fails", trigger=sluice.event("test/fail"), retries=2)
def always_fails(ctx: sluice.Context) -> str:
    ctx.step.run("boom", boom)
    return "unreachable"


@app.function(id="fine", trigger=sluice.event("test/fine"))
def fine(ctx: sluice.Context) -> dict:
    return {"ok": ctx.step.run("one", lambda: 1)}


@app.function(id="big-state", trigger=sluice.event("test/big"))
def big_state(ctx: sluice.Context) -> dict:
    # Two 700 KB step outputs: the run's state (~1.4 MB) is past NATS's 1 MB message size.
    a = ctx.step.run("first-blob", lambda: "a" * 700_000)
    b = ctx.step.run("second-blob", lambda: "b" * 700_000)
    return {"sizes": [len(a), len(b)]}


@app.function(id="big-result", trigger=sluice.event("test/big-result"), retries=0)
def big_result(ctx: sluice.Context) -> str:
    # A 3 MB step output returned as the result: never sent twice in one response.
    return ctx.step.run("blob", lambda: "c" * 3_000_000)

