import sluice

app = sluice.App("durable")


@app.function(id="nap", trigger=sluice.event("test/nap"))
def nap(ctx: sluice.Context) -> dict:
    before = ctx.step.run("before", lambda: "awake")
    ctx.step.sleep("nap", ctx.event.data.get("seconds", 2))
    return {"before": before, "after": ctx.step.run("after", lambda: "rested")}


@app.function(id="await-confirm", trigger=sluice.event("test/signup"))
def await_confirm(ctx: sluice.Context) -> dict:
    confirmed = ctx.step.wait_for_event("confirm", event="test/confirmed",
                                        if_="async.data.id == event.data.id",
                                        timeout=ctx.event.data.get("timeout", 30))
    if confirmed is None:
        return {"confirmed": False}
    return {"confirmed": True, "by": confirmed["data"]["by"]}


@app.function(id="fan-out", trigger=sluice.event("test/fan-out"))
def fan_out(ctx: sluice.Context) -> dict:
    sent = ctx.step.send_event("announce", [{"name": "test/fine", "data": {"n": 1}},
                                            {"name": "test/fine", "data": {"n": 2}}])
    return {"sent": sent["ids"]}


@app.function(id="fine", trigger=sluice.event("test/fine"))
def fine(ctx: sluice.Context) -> dict:
    return {"n": ctx.event.data.get("n")}


@app.function(id="double", trigger=sluice.event("test/unused-double"))
def double(ctx: sluice.Context) -> int:
    return ctx.step.run("double", lambda: ctx.event.data["value"] * 2)


@app.function(id="caller", trigger=sluice.event("test/invoke"))
def caller(ctx: sluice.Context) -> dict:
    result = ctx.step.invoke("ask-double", function="double", data={"value": ctx.event.data["value"]},
                             timeout="30s")
    return {"doubled": result}


def explode() -> None:
    raise sluice.NonRetriableError("no way")


def on_explode_failure(ctx: sluice.Context) -> dict:
    return {"saw": ctx.event.data["function_id"], "error": ctx.event.data["error"]["message"]}


@app.function(id="explodes", trigger=sluice.event("test/explode"), retries=0, on_failure=on_explode_failure)
def explodes(ctx: sluice.Context) -> None:
    ctx.step.run("explode", explode)


def slow_square(n: int) -> int:
    import time

    time.sleep(1.0)
    return n * n


@app.function(id="squares", trigger=sluice.event("test/parallel"))
def squares(ctx: sluice.Context) -> dict:
    a, b = ctx.step.parallel(("square-3", slow_square, 3), ("square-4", slow_square, 4))
    total = ctx.step.run("sum", lambda: a + b)
    return {"squares": [a, b], "sum": total}


@app.function(id="charge-once", trigger=sluice.event("test/charge"), idempotency="event.data.order_id")
def charge_once(ctx: sluice.Context) -> dict:
    return {"charged": ctx.event.data["order_id"]}


@app.function(id="remind", trigger=sluice.event("test/cart"),
              cancel_on=[sluice.event("test/checkout", if_="async.data.cart == event.data.cart")])
def remind(ctx: sluice.Context) -> str:
    ctx.step.sleep("wait-a-bit", 30)
    return "reminded"


def tick(n: int) -> int:
    import time

    time.sleep(ctx_delay(n))
    return n


def ctx_delay(n: int) -> float:
    return 0.4 if n else 0.0


@app.function(id="ten-steps", trigger=sluice.event("test/ten"), checkpoint=True)
def ten_steps(ctx: sluice.Context) -> int:
    slow = bool(ctx.event.data.get("slow"))
    return sum(ctx.step.run(f"step-{i}", tick, i if slow else 0) + i for i in range(10))


def hold(n: int) -> int:
    import time

    time.sleep(0.5)
    return n


@app.function(id="one-at-a-time", trigger=sluice.event("test/serial"), concurrency=1)
def one_at_a_time(ctx: sluice.Context) -> int:
    return ctx.step.run("hold", hold, ctx.event.data["n"])


@app.function(id="once-a-minute", trigger=sluice.event("test/limited"), rate_limit={"limit": 1, "period": "1m"})
def once_a_minute(ctx: sluice.Context) -> str:
    return "ran"


@app.function(id="settle", trigger=sluice.event("test/typing"),
              debounce={"period": "1s", "key": "event.data.doc"})
def settle(ctx: sluice.Context) -> dict:
    return {"text": ctx.event.data["text"]}


@app.function(id="bundle", trigger=sluice.event("test/item"), batch={"max_size": 3, "timeout": "2s"})
def bundle(ctx: sluice.Context) -> list:
    return sorted(e["data"]["n"] for e in ctx.events)


@app.function(id="trickle", trigger=sluice.event("test/trickle"), throttle={"limit": 1, "period": "1s"})
def trickle(ctx: sluice.Context) -> int:
    return ctx.event.data["n"]


@app.function(id="too-slow", trigger=sluice.event("test/too-slow"), timeout="2s", retries=0)
def too_slow(ctx: sluice.Context) -> str:
    ctx.step.run("quick", lambda: 1)
    ctx.step.sleep("longer-than-allowed", 3)
    return "finished anyway"


@app.function(id="alarm", trigger=sluice.event("test/alarm"))
def alarm(ctx: sluice.Context) -> str:
    ctx.step.sleep_until("ring", ctx.event.data["at_ms"])
    return "rang"


@app.function(id="prioritised", trigger=sluice.event("test/prio"), priority="event.data.p")
def prioritised(ctx: sluice.Context) -> int:
    return ctx.event.data["p"]
