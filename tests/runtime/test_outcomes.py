"""Turning a sandbox call into a run transition: retries, failures, limits, bad guests."""

from __future__ import annotations

from typing import Any

from runtime.limits import RuntimeLimits
from runtime.outcomes import apply_result, backoff_ms
from runtime.registry import FunctionDef
from runtime.state import RunState
from sandboxes import Result, Target
from sluice.protocol import pack

LIMITS = RuntimeLimits(backoff_base_ms=1000)
FN = FunctionDef(app="shop", id="f", name="f", triggers=({"event": "e", "if": None},), retries=2,
                 timeout_ms=1000, target=Target(kind="module", ref="x.wat"), sandbox="wasm")


def state() -> RunState:
    return RunState(id="R", app="shop", function="shop/f", event={"id": "E", "name": "e"}, events=[],
                    created_at=0)


def ok(*ops: dict[str, Any]) -> Result:
    return Result(ok=True, stdout=pack({"v": 1, "ops": list(ops)}), stderr=b"log line", exit_code=0,
                  error=None, duration_ms=1.0)


def apply(st: RunState, result: Result) -> Any:
    return apply_result(st, FN, result, LIMITS, started=10, ended=20, timings={})


def test_a_step_output_is_memoized_and_the_next_job_is_due_now() -> None:
    st = state()
    token = st.token
    trans = apply(st, ok({"op": "step", "id": "s1", "name": "one", "data": {"n": 1}}))
    assert st.steps == {"s1": {"data": {"n": 1}}}
    assert st.status == "running" and st.token != token
    assert trans.next_job_at == 20
    assert [a["status"] for a in trans.attempts] == ["completed"]
    assert trans.attempts[0]["logs"] == "log line"


def test_done_completes_the_run_with_its_output() -> None:
    st = state()
    trans = apply(st, ok({"op": "done", "data": [1, 2]}))
    assert st.status == "completed" and st.output == [1, 2] and st.ended_at == 20
    assert trans.next_job_at is None


def test_a_retriable_step_error_is_retried_with_backoff_then_memoized_as_an_error() -> None:
    st = state()
    op = {"op": "step_error", "id": "s1", "name": "one", "error": {"name": "E", "message": "boom"},
          "retriable": True}
    t1 = apply(st, ok(op))
    assert st.attempt == 1 and "s1" not in st.steps
    assert t1.next_job_at is not None and 20 + 500 <= t1.next_job_at <= 20 + 1000
    apply(st, ok(op))
    assert st.attempt == 2
    t3 = apply(st, ok(op))
    assert st.steps["s1"] == {"error": {"name": "E", "message": "boom"}}
    assert st.attempt == 0 and t3.next_job_at == 20
    assert [a["status"] for a in t3.attempts] == ["failed"]


def test_a_non_retriable_step_error_is_memoized_at_once() -> None:
    st = state()
    apply(st, ok({"op": "step_error", "id": "s1", "name": "one", "error": {"name": "E", "message": "no"},
                  "retriable": False}))
    assert st.steps["s1"]["error"]["message"] == "no"


def test_a_function_error_fails_the_run_after_its_retries() -> None:
    st = state()
    op = {"op": "error", "error": {"name": "ValueError", "message": "bad"}, "retriable": True}
    for _ in range(2):
        apply(st, ok(op))
        assert st.status == "running"
    trans = apply(st, ok(op))
    assert st.status == "failed" and st.error == {"name": "ValueError", "message": "bad"}
    assert trans.next_job_at is None


def test_retry_after_overrides_the_backoff() -> None:
    st = state()
    trans = apply(st, ok({"op": "error", "error": {"name": "E", "message": "m"}, "retriable": True,
                          "retry_after_ms": 7000}))
    assert trans.next_job_at == 20 + 7000


def test_garbage_output_is_a_retriable_protocol_error_then_fails_the_run() -> None:
    st = state()
    garbage = Result(ok=True, stdout=b"\xc1\xc1 not msgpack", stderr=b"", exit_code=0, error=None,
                     duration_ms=1)
    for _ in range(3):
        trans = apply(st, garbage)
    assert st.status == "failed"
    assert st.error is not None and st.error["name"] == "ProtocolError"
    assert "not valid" in st.error["message"]
    assert trans.attempts[0]["status"] == "failed"


def test_a_crashed_sandbox_call_records_the_reason() -> None:
    st = state()
    crashed = Result(ok=False, stdout=b"", stderr=b"Traceback...", exit_code=3, error="exited with code 3",
                     duration_ms=1)
    trans = apply(st, crashed)
    assert "exited with code 3" in trans.attempts[0]["error"]["message"]
    assert trans.attempts[0]["status"] == "retrying"


def test_a_step_output_over_the_limit_fails_the_run_clearly() -> None:
    st = state()
    small = RuntimeLimits(step_output_bytes=10)
    apply_result(st, FN, ok({"op": "step", "id": "s", "name": "big", "data": "x" * 100}), small,
                 started=0, ended=1, timings={})
    assert st.status == "failed" and st.error is not None and "limit is 10" in st.error["message"]


def test_a_node_op_the_executor_did_not_carry_out_fails_without_retrying() -> None:
    st = state()
    apply(st, ok({"op": "fetch", "id": "s", "name": "get", "request": {"url": "http://x"}, "timeout_ms": 1}))
    assert st.status == "failed" and st.error is not None and "not supported" in st.error["message"]


def test_backoff_grows_and_is_capped() -> None:
    limits = RuntimeLimits(backoff_base_ms=100, backoff_cap_ms=1000)
    assert 50 <= backoff_ms(1, limits) <= 100
    assert 200 <= backoff_ms(3, limits) <= 400
    assert 500 <= backoff_ms(30, limits) <= 1000


def test_a_sleep_parks_the_run_until_its_time_with_a_timer_job() -> None:
    st = state()
    trans = apply(st, ok({"op": "step", "id": "a", "name": "a", "data": 1},
                         {"op": "sleep", "id": "s", "name": "nap", "until_ms": 5_000}))
    assert st.status == "sleeping" and st.steps == {"a": {"data": 1}}
    assert st.pending == {"kind": "sleep", "id": "s", "name": "nap", "expires": 5_000}
    assert trans.next_job_at == 5_000
    assert [a["status"] for a in trans.attempts] == ["completed", "sleeping"]


def test_a_wait_registers_and_its_timer_is_the_timeout() -> None:
    st = state()
    trans = apply(st, ok({"op": "wait_for_event", "id": "w", "name": "confirm", "event": "user/confirmed",
                          "if": "async.data.id == event.data.id", "timeout_ms": 3_000}))
    assert st.status == "waiting" and trans.wait is not None
    assert trans.wait["event"] == "user/confirmed" and trans.wait["if"] == "async.data.id == event.data.id"
    assert trans.next_job_at == 20 + 3_000


def test_an_invoke_names_a_child_run_and_a_timeout() -> None:
    st = state()
    trans = apply(st, ok({"op": "invoke", "id": "i", "name": "call", "function": "shop/other", "data": {"x": 1},
                          "timeout_ms": 1_000}))
    assert trans.invoke is not None and st.pending is not None
    assert trans.invoke["child"] == st.pending["child"] and trans.invoke["function"] == "shop/other"
    assert trans.next_job_at == 1_020


def test_a_sleep_past_a_year_fails_clearly() -> None:
    st = state()
    apply(st, ok({"op": "sleep", "id": "s", "name": "long", "until_ms": 20 + 400 * 24 * 3600 * 1000}))
    assert st.status == "failed" and st.error is not None and "one year" in st.error["message"]


def test_resolving_a_timed_out_wait_memoizes_none_and_an_invoke_an_error() -> None:
    from runtime.outcomes import resolve, timed_out

    st = state()
    apply(st, ok({"op": "wait_for_event", "id": "w", "name": "w", "event": "e", "timeout_ms": 10}))
    assert st.pending is not None
    record = resolve(st, timed_out(st.pending), 99)
    assert st.steps["w"] == {"data": None} and st.pending is None and st.status == "running"
    assert record["status"] == "completed"
    assert timed_out({"kind": "invoke", "function": "a/b"})["error"]["name"] == "InvokeTimeout"


def test_a_functions_own_backoff_overrides_the_default() -> None:
    limits = RuntimeLimits(backoff_base_ms=1000)
    assert 5 <= backoff_ms(1, limits, {"base_ms": 10, "max_ms": 20}) <= 10
    assert 10 <= backoff_ms(9, limits, {"base_ms": 10, "max_ms": 20}) <= 20
