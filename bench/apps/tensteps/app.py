import sluice

app = sluice.App("tensteps")


def noop(i: int) -> int:
    return i


@app.function(id="plain", trigger=sluice.event("bench/plain"))
def plain(ctx: sluice.Context) -> int:
    return sum(ctx.step.run(f"s{i}", noop, i) for i in range(10))


@app.function(id="checkpointed", trigger=sluice.event("bench/checkpointed"), checkpoint=True)
def checkpointed(ctx: sluice.Context) -> int:
    return sum(ctx.step.run(f"s{i}", noop, i) for i in range(10))
