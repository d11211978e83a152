"""Checkpointing: several new step.run steps in one call, each its own op, until a budget
runs out or a step of another kind comes."""

from pathlib import Path

from .harness import call, run_shim, step_id, write_app
from .host import START_MS, Host

APP = """
    import time
    import sluice

    app = sluice.App("a")

    def work(ctx):
        a = ctx.step.run("a", lambda: (1, 2))       # a tuple: the next step sees the round trip, a list
        b = ctx.step.run("b", lambda: a + [3])
        c = ctx.step.run("c", lambda: len(b))
        ctx.step.sleep("rest", "1m")
        d = ctx.step.run("d", lambda: c * 10)
        return d

    app.function(id="on", checkpoint=True)(work)
    app.function(id="off")(work)
    app.function(id="two", checkpoint={"max_steps": 2})(work)

    @app.function(id="slow", checkpoint={"max_time": "300ms"})
    def slow(ctx):
        for i in range(5):
            ctx.step.run("nap", time.sleep, 0.2)
        return "done"

    @app.function(id="fails", checkpoint=True)
    def fails(ctx):
        ctx.step.run("ok", lambda: 1)
        ctx.step.run("boom", lambda: 1 / 0)

    @app.function(id="unencodable", checkpoint=True)
    def unencodable(ctx):
        ctx.step.run("ok", lambda: 1)
        ctx.step.run("set", lambda: {1, 2})

    @app.function(id="raises-after", checkpoint=True)
    def raises_after(ctx):
        ctx.step.run("ok", lambda: 1)
        raise ValueError("after the step")
"""


def test_a_checkpointing_call_reports_each_step_then_stops_at_a_sleep(tmp_path: Path) -> None:
    result = run_shim(write_app(tmp_path, APP), call("on", now_ms=START_MS))
    assert [(op["op"], op.get("name")) for op in result.ops] == [
        ("step", "a"), ("step", "b"), ("step", "c"), ("sleep", "rest")]
    assert [op.get("data") for op in result.ops[:3]] == [[1, 2], [1, 2, 3], 3]
    assert result.ops[3]["until_ms"] - START_MS - 60_000 < 1_000  # plus the time the steps took


def test_a_host_needs_fewer_calls_with_checkpointing_and_gets_the_same_result(tmp_path: Path) -> None:
    on = Host(write_app(tmp_path, APP), "on", {"name": "x", "data": {}})
    off = Host(tmp_path, "off", {"name": "x", "data": {}})
    assert on.drive() == off.drive() == {"op": "done", "data": 30}
    assert on.steps == off.steps
    assert [len(ops) for _, ops in on.calls] == [4, 2]  # [a, b, c, rest], [d, done]
    # One new step a call; the last step's call also carries the function's return.
    assert [len(ops) for _, ops in off.calls] == [1, 1, 1, 1, 2]


def test_the_step_budget_ends_the_call(tmp_path: Path) -> None:
    result = run_shim(write_app(tmp_path, APP), call("two"))
    assert [op["name"] for op in result.ops] == ["a", "b"]


def test_the_time_budget_ends_the_call(tmp_path: Path) -> None:
    result = run_shim(write_app(tmp_path, APP), call("slow"))
    assert [op["id"] for op in result.ops] == [step_id("nap"), step_id("nap", 1)]


def test_a_failing_step_ends_the_call_after_the_steps_before_it(tmp_path: Path) -> None:
    ops = run_shim(write_app(tmp_path, APP), call("fails")).ops
    assert [op["op"] for op in ops] == ["step", "step_error"]
    assert ops[1]["error"]["name"] == "ZeroDivisionError" and ops[1]["retriable"] is True


def test_an_unencodable_result_fails_only_its_own_step(tmp_path: Path) -> None:
    ops = run_shim(write_app(tmp_path, APP), call("unencodable")).ops
    assert ops[0] == {"op": "step", "id": step_id("ok"), "name": "ok", "data": 1}
    assert ops[1]["op"] == "error" and ops[1]["error"]["name"] == "UnencodableOutput"
    assert "step 'set' returned a value msgpack cannot encode: type 'set' at result" in ops[1]["error"]["message"]


def test_an_error_after_a_checkpointed_step_comes_after_its_op(tmp_path: Path) -> None:
    ops = run_shim(write_app(tmp_path, APP), call("raises-after")).ops
    assert [op["op"] for op in ops] == ["step", "error"]
    assert ops[1]["error"]["message"] == "after the step"


def test_checkpointing_is_off_by_default(tmp_path: Path) -> None:
    result = run_shim(write_app(tmp_path, APP), call("off"))
    assert result.ops == [{"op": "step", "id": step_id("a"), "name": "a", "data": [1, 2]}]


TRAILING_APP = """
import sluice

app = sluice.App("tail")
SEEN = []


@app.function(id="f")
def f(ctx):
    a = ctx.step.run("a", lambda: 1)
    b = ctx.step.run("b", lambda: a + 1)
    if ctx.event.data.get("fail"):
        raise ValueError("after b")
    return a + b
"""


def test_the_last_steps_call_also_returns_the_functions_result_or_error(tmp_path: Path) -> None:
    app = write_app(tmp_path, TRAILING_APP)
    ok = Host(app, "f", {"name": "x", "data": {}})
    assert ok.drive() == {"op": "done", "data": 3}
    assert [[op["op"] for op in ops] for _, ops in ok.calls] == [["step"], ["step", "done"]]
    bad = Host(tmp_path, "f", {"name": "x", "data": {"fail": True}})
    final = bad.drive()
    assert final["op"] == "error" and "after b" in final["error"]["message"]
    assert [[op["op"] for op in ops] for _, ops in bad.calls] == [["step"], ["step", "error"]]
    assert bad.steps == ok.steps  # b's output is kept even though the function failed after it


BIG_RESULT_APP = """
import sluice

app = sluice.App("big")


@app.function(id="f")
def f(ctx):
    return ctx.step.run("blob", lambda: "x" * ctx.event.data["n"])
"""


def test_a_big_result_after_a_step_comes_in_a_call_of_its_own(tmp_path: Path) -> None:
    app = write_app(tmp_path, BIG_RESULT_APP)
    small = Host(app, "f", {"name": "x", "data": {"n": 1000}})
    assert small.drive() == {"op": "done", "data": "x" * 1000}
    assert [[op["op"] for op in ops] for _, ops in small.calls] == [["step", "done"]]
    big = Host(app, "f", {"name": "x", "data": {"n": 200_000}})
    assert big.drive() == {"op": "done", "data": "x" * 200_000}
    # The step's output is not sent twice in one response: the result comes next call.
    assert [[op["op"] for op in ops] for _, ops in big.calls] == [["step"], ["done"]]
