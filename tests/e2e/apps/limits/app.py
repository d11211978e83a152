import sluice

app = sluice.App("limits")


@app.function(id="many-steps", trigger=sluice.event("test/many"), checkpoint=True, retries=0)
def many_steps(ctx: sluice.Context) -> int:
    return sum(ctx.step.run(f"s{i}", lambda i=i: i) for i in range(ctx.event.data["steps"]))


@app.function(id="big-state", trigger=sluice.event("test/big"), retries=0)
def big_state(ctx: sluice.Context) -> int:
    blobs = [ctx.step.run(f"blob-{i}", lambda: "x" * 40_000) for i in range(5)]
    return len(blobs)


@app.function(id="big-output", trigger=sluice.event("test/huge-output"), retries=0)
def big_output(ctx: sluice.Context) -> int:
    return len(ctx.step.run("huge", lambda: "y" * 60_000))


@app.function(id="every-minute", trigger=sluice.cron("* * * * *"))
def every_minute(ctx: sluice.Context) -> dict:
    return {"fired": ctx.event.data["fire_ms"]}
