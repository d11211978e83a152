"""Driving functions call by call, feeding memoized steps back the way the host does."""

import hashlib
from pathlib import Path

import pytest

from .harness import ENV, PURE_MSGPACK, call, drive, run_shim, step_id, write_app

CHECKOUT = """
    import sluice

    app = sluice.App("shop")

    def reserve(order_id, qty=1):
        print(f"ran reserve {order_id} x{qty}")
        return {"reservation": f"res-{order_id}", "qty": qty}

    def charge(order_id, amount):
        print(f"ran charge {order_id}")
        return {"charge": f"ch-{order_id}", "amount": amount}

    @app.function(id="checkout", trigger=sluice.event("shop/order.created"))
    def checkout(ctx):
        order_id = ctx.event.data["id"]
        validated = ctx.step.run("validate", lambda: {"id": order_id, "ok": True, "items": (1, 2)})
        reservation = ctx.step.run("reserve", reserve, order_id, qty=2)
        payment = ctx.step.run("charge", charge, order_id, ctx.event.data.total)
        return {"validated": validated, "reservation": reservation, "payment": payment,
                "run": ctx.run_id, "attempt": ctx.attempt, "events": len(ctx.events)}
"""


@pytest.mark.parametrize("env", [ENV, PURE_MSGPACK], ids=["c-msgpack", "pure-python-msgpack"])
def test_a_three_step_function_runs_one_new_step_per_call_and_the_last_call_returns_too(
        tmp_path: Path, env: dict[str, str]) -> None:
    event = {"name": "shop/order.created", "data": {"id": 7, "total": 150}}
    run = drive(write_app(tmp_path, CHECKOUT), "checkout", event, env=env)
    # One new step a call; the function runs on after "charge" and returns in the same call.
    assert [[op["op"] for op in ops] for ops in run.calls] == [["step"], ["step"], ["step", "done"]]
    assert [op["name"] for op in run.ops[:3]] == ["validate", "reserve", "charge"]
    assert [op["id"] for op in run.ops[:3]] == [step_id("validate"), step_id("reserve"), step_id("charge")]
    # Each step's code ran in exactly one call; memoized steps were not run again.
    assert ["ran reserve" in err for err in run.stderr] == [False, True, False]
    assert ["ran charge" in err for err in run.stderr] == [False, False, True]
    assert run.final == {"op": "done", "data": {
        "validated": {"id": 7, "ok": True, "items": [1, 2]},  # what comes back is the msgpack round trip
        "reservation": {"reservation": "res-7", "qty": 2},
        "payment": {"charge": "ch-7", "amount": 150},
        "run": "run-1", "attempt": 0, "events": 1}}


def test_step_ids_are_the_sha1_of_the_name_and_repeats_count_up(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, """
        import sluice
        app = sluice.App("a")

        @app.function(id="poll")
        def poll(ctx):
            found = [ctx.step.run("fetch", lambda i=i: i * 10) for i in range(3)]
            return found + [ctx.step.run("other", int)]
    """)
    run = drive(app_dir, "poll", {"name": "x", "data": {}})
    assert [[op["op"] for op in ops] for ops in run.calls] == [["step"], ["step"], ["step"], ["step", "done"]]
    ids = [op["id"] for op in run.ops[:-1]]
    sha1 = [hashlib.sha1(key.encode()).hexdigest() for key in ("fetch", "fetch:1", "fetch:2", "other")]
    assert ids == sha1 == [step_id("fetch"), step_id("fetch", 1), step_id("fetch", 2), step_id("other")]
    assert run.final == {"op": "done", "data": [0, 10, 20, 0]}
    # Same request, same ids: nothing about the id depends on time or process.
    again = run_shim(app_dir, call("poll", steps={ids[0]: {"data": 0}}))
    assert again.op["id"] == ids[1]


def test_a_memoized_step_error_raises_step_error_which_the_function_can_catch(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, """
        import sluice
        app = sluice.App("a")

        @app.function(id="f")
        def f(ctx):
            try:
                ctx.step.run("charge", lambda: 1)
            except sluice.StepError as exc:
                return {"step": exc.step, "name": exc.name, "message": exc.message, "stack": exc.stack,
                        "text": str(exc)}
    """)
    err = {"name": "CardDeclined", "message": "card declined", "stack": "Traceback ..."}
    result = run_shim(app_dir, call("f", steps={step_id("charge"): {"error": err}}))
    assert result.op == {"op": "done", "data": {
        "step": "charge", "name": "CardDeclined", "message": "card declined", "stack": "Traceback ...",
        "text": "step 'charge' failed: CardDeclined: card declined"}}


FAILING = """
    import sluice
    app = sluice.App("a")

    def boom(kind):
        if kind == "plain":
            raise ValueError("flaky upstream")
        if kind == "final":
            raise sluice.NonRetriableError("card declined")
        raise sluice.RetryAfterError("rate limited", "30s")

    @app.function(id="f")
    def f(ctx):
        ctx.step.run("first", lambda: "ok")
        ctx.step.run("pay", boom, ctx.event.data.kind)
        return "unreachable"
"""


def test_a_failing_step_reports_step_error_with_its_retry_policy(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, FAILING)
    steps = {step_id("first"): {"data": "ok"}}
    expected = {"plain": (True, None, "ValueError", "flaky upstream"),
                "final": (False, None, "NonRetriableError", "card declined"),
                "later": (True, 30_000, "RetryAfterError", "rate limited")}
    for kind, (retriable, after, name, message) in expected.items():
        op = run_shim(app_dir, call("f", {"name": "x", "data": {"kind": kind}}, steps)).op
        assert op["op"] == "step_error" and op["id"] == step_id("pay") and op["name"] == "pay"
        assert (op["retriable"], op["retry_after_ms"]) == (retriable, after)
        assert (op["error"]["name"], op["error"]["message"]) == (name, message)
        assert 'in boom' in op["error"]["stack"] and "sluice/_steps.py" not in op["error"]["stack"]


def test_a_step_that_keeps_failing_fails_the_function_without_more_retries(tmp_path: Path) -> None:
    run = drive(write_app(tmp_path, FAILING), "f", {"name": "x", "data": {"kind": "plain"}}, retries=2)
    # A failed step ends its call: nothing runs after it, so the function's error comes a call later.
    assert [[op["op"] for op in ops] for ops in run.calls] == [
        ["step"], ["step_error"], ["step_error"], ["step_error"], ["error"]]
    assert run.final["retriable"] is False
    assert run.final["error"]["name"] == "StepError"
    assert run.final["error"]["message"] == "step 'pay' failed: ValueError: flaky upstream"
    assert "The step's own error:" in run.final["error"]["stack"]


def test_swallowing_the_step_interrupt_does_not_lose_the_step(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, """
        import sluice
        app = sluice.App("a")

        @app.function(id="f")
        def f(ctx):
            try:
                ctx.step.run("one", lambda: 1)
            except BaseException:
                pass
            try:
                ctx.step.run("two", lambda: 2)
            except BaseException:
                pass
            return "too early"
    """)
    assert run_shim(app_dir, call("f")).op == {"op": "step", "id": step_id("one"), "name": "one", "data": 1}


def test_misused_steps_fail_with_messages_naming_the_problem(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, """
        import sluice
        app = sluice.App("a")

        @app.function(id="empty-name")
        def empty_name(ctx):
            ctx.step.run("", lambda: 1)

        @app.function(id="long-name")
        def long_name(ctx):
            ctx.step.run("x" * 257, lambda: 1)

        @app.function(id="nested")
        def nested(ctx):
            ctx.step.run("outer", lambda: ctx.step.run("inner", lambda: 1))

        @app.function(id="not-callable")
        def not_callable(ctx):
            ctx.step.run("s", 42)
    """)
    op = run_shim(app_dir, call("empty-name")).op
    assert op["op"] == "error" and "bad step name ''" in op["error"]["message"]
    op = run_shim(app_dir, call("long-name")).op
    assert "at most 256 characters" in op["error"]["message"]
    op = run_shim(app_dir, call("nested")).op
    assert op["op"] == "step_error" and op["retriable"] is False
    assert op["error"]["message"] == "step.run('inner') was called inside step 'outer': steps cannot nest"
    op = run_shim(app_dir, call("not-callable")).op
    assert op["error"]["message"] == "step 's': fn must be callable, got int"
