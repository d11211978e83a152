"""How a function's return, raise, and context look on the wire."""

from pathlib import Path

import pytest

from sluice.protocol import decode_response

from .harness import ENV, PURE_MSGPACK, call, run_shim, step_id, write_app

APP = """
    import sluice
    app = sluice.App("shop")

    @app.function(id="fails")
    def fails(ctx):
        kind = ctx.event.data.kind
        if kind == "plain":
            raise KeyError("missing")
        if kind == "final":
            raise sluice.NonRetriableError("bad input")
        if kind == "later":
            raise sluice.RetryAfterError("busy", 2.5)
        if kind == "exit":
            raise SystemExit(4)
        return kind

    @app.function(id="context")
    def context(ctx):
        ctx.log.info("hello %s", ctx.event.data.user.name)
        ctx.log.warning("literal %d percent")
        return {"name": ctx.event.name, "user": ctx.event.data.user.name, "raw": ctx.event["data"]["user"],
                "events": [e.name for e in ctx.events], "run": ctx.run_id, "attempt": ctx.attempt,
                "function": ctx.function_id, "missing": hasattr(ctx.event, "nope"),
                "blob": b"\\x00\\xff"}

    @app.function(id="unencodable-return")
    def unencodable_return(ctx):
        return {"ok": [1, {"when": {1, 2}}]}

    @app.function(id="unencodable-step")
    def unencodable_step(ctx):
        ctx.step.run("load", lambda: object())

    @app.function(id="huge-int")
    def huge_int(ctx):
        return 2 ** 70

    @app.function(id="cycle")
    def cycle(ctx):
        loop = []
        loop.append(loop)
        return loop
"""


@pytest.mark.parametrize(("kind", "retriable", "after", "name", "message"), [
    ("plain", True, None, "KeyError", "'missing'"),
    ("final", False, None, "NonRetriableError", "bad input"),
    ("later", True, 2500, "RetryAfterError", "busy"),
    ("exit", True, None, "SystemExit", "4"),
])
def test_a_function_that_raises_returns_an_error_op_with_its_retry_policy(
        tmp_path: Path, kind: str, retriable: bool, after: int | None, name: str, message: str) -> None:
    result = run_shim(write_app(tmp_path, APP), call("fails", {"name": "x", "data": {"kind": kind}}))
    assert result.code == 0, result.stderr
    decode_response(result.stdout)  # the host's own check accepts it
    op = result.op
    assert (op["op"], op["retriable"], op["retry_after_ms"]) == ("error", retriable, after)
    assert (op["error"]["name"], op["error"]["message"]) == (name, message)
    assert "Traceback" in op["error"]["stack"] and "in fails" in op["error"]["stack"]


def test_a_function_that_returns_sends_done_with_its_value(tmp_path: Path) -> None:
    result = run_shim(write_app(tmp_path, APP), call("fails", {"name": "x", "data": {"kind": "fine"}}))
    assert result.response == {"v": 1, "ops": [{"op": "done", "data": "fine"}]}


def test_the_context_exposes_the_event_by_key_and_attribute_and_the_run(tmp_path: Path) -> None:
    event = {"name": "user/signup", "data": {"user": {"name": "ada"}}, "id": "e1", "ts": 1767225600000}
    request = call("context", event, attempt=2)
    request["events"] = [event, {"name": "user/other", "data": {}}]
    result = run_shim(write_app(tmp_path, APP), request)
    assert result.op == {"op": "done", "data": {
        "name": "user/signup", "user": "ada", "raw": {"name": "ada"}, "events": ["user/signup", "user/other"],
        "run": "run-1", "attempt": 2, "function": "context", "missing": False, "blob": b"\x00\xff"}}
    assert "INFO hello ada\n" in result.stderr
    assert "WARNING literal %d percent\n" in result.stderr


def test_an_unknown_function_is_a_non_retriable_error_listing_the_known_ones(tmp_path: Path) -> None:
    op = run_shim(write_app(tmp_path, APP), call("nope")).op
    assert op == {"op": "error", "retriable": False, "retry_after_ms": None, "error": {
        "name": "UnknownFunction",
        "message": "app 'shop' has no function 'nope' (known: 'fails', 'context', 'unencodable-return', "
                   "'unencodable-step', 'huge-int', 'cycle')"}}


@pytest.mark.parametrize(("function", "message"), [
    ("unencodable-return", "the function returned a value msgpack cannot encode: "
                           "type 'set' at result['ok'][1]['when']"),
    ("unencodable-step", "step 'load' returned a value msgpack cannot encode: type 'object' at result"),
    ("huge-int", "the function returned a value msgpack cannot encode: "
                 "an int too large for 64 bits at result"),
    ("cycle", "the function returned a value msgpack cannot encode: nesting deeper than 256 levels"),
])
@pytest.mark.parametrize("env", [ENV, PURE_MSGPACK], ids=["c-msgpack", "pure-python-msgpack"])
def test_a_result_msgpack_cannot_encode_is_a_non_retriable_error_naming_it(
        tmp_path: Path, function: str, message: str, env: dict[str, str]) -> None:
    op = run_shim(write_app(tmp_path, APP), call(function), env=env).op
    assert (op["op"], op["retriable"], op["error"]["name"]) == ("error", False, "UnencodableOutput")
    assert op["error"]["message"].startswith(message)


def test_memoized_steps_may_hold_any_msgpack_value(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, """
        import sluice
        app = sluice.App("a")

        @app.function(id="f")
        def f(ctx):
            return [ctx.step.run("s", lambda: 1), ctx.step.run("t", lambda: 1), ctx.step.run("u", lambda: 1)]
    """)
    steps = {step_id("s"): {"data": None}, step_id("t"): {"data": {1: b"x"}}, step_id("u"): {}}
    assert run_shim(app_dir, call("f", steps=steps)).op == {"op": "done", "data": [None, {1: b"x"}, None]}
