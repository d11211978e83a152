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
