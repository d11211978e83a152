"""What a sandbox call means for a run: the state transition, as pure functions.

The executor calls :func:`apply_result` with the run state, the function and what the
sandbox returned; it gets back the changed state (not yet saved), when the next job
is due (if any) and the step attempts to record in history. No I/O here, so every rule
— retries, backoff, limits, bad guest output — is tested without a sandbox.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from runtime.ids import new_id
from runtime.limits import RuntimeLimits
from runtime.registry import FunctionDef
from runtime.state import RunState
from sandboxes import Result
from sluice.protocol import ProtocolError, decode_response, pack

# Pseudo step id under which failed function calls (no step named) are recorded.
CALL_STEP_ID = "$call"
SUPPORTED_OPS = frozenset({"done", "error", "step", "step_error", "sleep", "wait_for_event", "invoke", "planned"})
YEAR_MS = 366 * 24 * 3600 * 1000


@dataclass
class Transition:
    next_job_at: int | None = None  # ms since epoch; None: no job (run finished or waits for a resume)
    attempts: list[dict[str, Any]] = field(default_factory=list)  # step attempts for history
    wait: dict[str, Any] | None = None  # a wait to register (the run's new ``pending``)
    invoke: dict[str, Any] | None = None  # a child run to start: {"child", "function", "data"}
    branch_retry_at: int | None = None  # a parallel branch to run again at this time (ms)


def _note(state: RunState, row: dict[str, Any]) -> None:
    """Remember where a memoized step came from (see ``RunState.records``)."""
    state.records[row["step_id"]] = {k: row.get(k) for k in ("name", "attempt", "started_at", "ended_at")}


def backoff_ms(attempt: int, limits: RuntimeLimits, custom: dict[str, Any] | None = None) -> int:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, then 50-100% of it.
    ``custom`` is a function's own ``backoff`` option ({"base_ms", "max_ms"})."""
    base = int((custom or {}).get("base_ms") or limits.backoff_base_ms)
    cap = int((custom or {}).get("max_ms") or limits.backoff_cap_ms)
    if base <= 0:
        return 0
    raw = min(cap, base * 2 ** max(0, attempt - 1))
    return int(raw * (0.5 + random.random() / 2))


def apply_result(
    state: RunState, fn: FunctionDef, result: Result, limits: RuntimeLimits, *, started: int, ended: int,
    timings: dict[str, float], ops: list[dict[str, Any]] | None = None,
) -> Transition:
    """Change ``state`` for what one sandbox call returned (``ops``: already decoded, and
    with node ops carried out, by the executor)."""
    logs = result.stderr.decode("utf-8", "replace")
    base = {"started_at": started, "ended_at": ended, "duration_ms": ended - started,
            "timings": timings, "logs": logs}
    if state.status == "queued":
        state.status, state.started_at = "running", started
    if not result.ok:
        err = {"name": "SandboxError", "message": f"the sandbox call failed: {result.error}",
               "stack": logs[-4000:]}
        return _call_failed(state, fn, limits, err, True, None, base, ended)
    try:
        if ops is None:
            ops = decode_response(result.stdout)["ops"]
    except ProtocolError as exc:
        err = {"name": "ProtocolError", "message": f"the guest's response is not valid: {exc}"}
        return _call_failed(state, fn, limits, err, True, None, base, ended)
    if not ops:
        err = {"name": "ProtocolError", "message": "the guest returned no ops"}
        return _call_failed(state, fn, limits, err, True, None, base, ended)
    for op in ops:
        if op["op"] not in SUPPORTED_OPS:
            err = {"name": "UnsupportedOp", "message": f"op {op['op']!r} is not supported by this runtime yet"}
            return _call_failed(state, fn, limits, err, False, None, base, ended)
    trans = Transition()
    for op in ops:
        kind = op["op"]
        if kind == "done":
            _finish(state, "completed", ended, output=op.get("data"))
            return trans
        if kind == "error":
            return _call_failed(state, fn, limits, op["error"], op["retriable"],
                                op.get("retry_after_ms"), base, ended)
        if kind == "step":
            if not _record_step(state, op, limits, base, trans, ended):
                return trans
        elif kind == "step_error":
            return _step_failed(state, fn, limits, op, base, trans, ended)
        elif kind == "planned":
            return _plan(state, [o for o in ops if o["op"] == "planned"], trans, ended)
        else:
            return _suspend(state, fn, limits, op, base, trans, ended)
    return trans


def _plan(state: RunState, planned: list[dict[str, Any]], trans: Transition, now: int) -> Transition:
    """Parallel steps: each planned branch becomes its own targeted job."""
    state.planned = {op["id"]: {"name": op["name"], "attempt": 0} for op in planned if op["id"] not in state.steps}
    state.attempt = 0
    state.token = new_id()
    trans.next_job_at = now
    return trans


def apply_branch(state: RunState, fn: FunctionDef, target: str, result: Result, limits: RuntimeLimits, *,
                 started: int, ended: int, timings: dict[str, float], ops: list[dict[str, Any]] | None) -> Transition:
    """Record what a targeted call (one parallel branch) returned. The run's token stays the
    same until the last branch is recorded; then its next call is due."""
    branch = state.planned[target]
    base = {"step_id": target, "name": branch["name"], "attempt": branch.get("attempt", 0), "started_at": started,
            "ended_at": ended, "duration_ms": ended - started, "timings": timings,
            "logs": result.stderr.decode("utf-8", "replace")}
    trans = Transition()
    op = None
    err: dict[str, Any] | None = None
    retriable = True
    if not result.ok:
        err = {"name": "SandboxError", "message": f"the sandbox call failed: {result.error}"}
    else:
        try:
            found = ops if ops is not None else decode_response(result.stdout)["ops"]
            op = next((o for o in found if o.get("id") == target and o["op"] in ("step", "step_error")), None)
            if op is None:  # the function no longer reaches this branch: its code changed under the run
                err, retriable = {"name": "ProtocolError", "message": f"the function did not reach parallel "
                                  f"step {branch['name']!r} (did its code change during the run?)"}, False
        except ProtocolError as exc:
            err = {"name": "ProtocolError", "message": f"the guest's response is not valid: {exc}"}
    if op is not None and op["op"] == "step":
        size = len(pack(op.get("data")))
        if size > limits.step_output_bytes:
            err, retriable = {"name": "OutputTooLarge", "message": f"step {branch['name']!r} returned {size} bytes; "
                              f"the limit is {limits.step_output_bytes}"}, False
        else:
            state.steps[target] = {"data": op.get("data")}
            trans.attempts.append({**base, "status": "completed", "output": op.get("data"), "error": None})
            _note(state, base)
    elif op is not None:
        err, retriable = op["error"], op["retriable"]
    if err is not None:
        if retriable and branch.get("attempt", 0) < fn.retries:
            branch["attempt"] = branch.get("attempt", 0) + 1
            trans.attempts.append({**base, "status": "retrying", "output": None, "error": err})
            trans.branch_retry_at = ended + backoff_ms(branch["attempt"], limits, fn.raw.get("backoff"))
            return trans
        state.steps[target] = {"error": err}
        trans.attempts.append({**base, "status": "failed", "output": None, "error": err})
        _note(state, base)
    del state.planned[target]
    if not state.planned:
        state.token = new_id()
        trans.next_job_at = ended
    return trans


def _suspend(state: RunState, fn: FunctionDef, limits: RuntimeLimits, op: dict[str, Any], base: dict[str, Any],
             trans: Transition, now: int) -> Transition:
    """sleep / wait_for_event / invoke: the run parks until a time, an event or a child run."""
    kind = op["op"]
    if kind == "sleep":
        expires = op["until_ms"]
    else:
        timeout = op.get("timeout_ms") or YEAR_MS
        expires = now + timeout
    if expires - now > YEAR_MS:
        err = {"name": "LimitExceeded", "message": f"step {op['name']!r}: sleeps and waits are limited to one year"}
        return _call_failed(state, fn, limits, err, False, None, base, now)
    pending: dict[str, Any] = {"kind": {"sleep": "sleep", "wait_for_event": "wait", "invoke": "invoke"}[kind],
                               "id": op["id"], "name": op["name"], "expires": expires}
    if kind == "wait_for_event":
        pending.update(event=op["event"], **{"if": op.get("if")})
        trans.wait = pending
    elif kind == "invoke":
        pending.update(child=new_id(), function=op["function"])
        trans.invoke = {"child": pending["child"], "function": op["function"], "data": op.get("data")}
    state.pending = pending
    state.status = "sleeping" if kind == "sleep" else "waiting"
    state.attempt = 0
    state.token = new_id()
    trans.attempts.append({**base, "step_id": op["id"], "name": op["name"], "attempt": 0, "status": state.status,
                           "output": None, "error": None})
    trans.next_job_at = expires  # wakes the run at the deadline: a sleep's end, or a wait's timeout
    return trans


def resolve(state: RunState, result: dict[str, Any], now: int) -> dict[str, Any]:
    """End the run's pending sleep/wait/invoke with ``result`` ({"data": ...} or {"error": ...});
    returns the step record for history."""
    pending = state.pending
    assert pending is not None
    state.steps[pending["id"]] = result
    state.pending = None
    state.status = "running"
    state.token = new_id()
    row = {"step_id": pending["id"], "name": pending["name"], "attempt": 0,
           "status": "failed" if "error" in result else "completed", "output": result.get("data"),
           "error": result.get("error"), "started_at": now, "ended_at": now, "duration_ms": 0,
           "timings": {}, "logs": ""}
    _note(state, row)
    return row


def timed_out(pending: dict[str, Any]) -> dict[str, Any]:
    """What a pending step resolves to when its deadline passes."""
    if pending["kind"] == "invoke":
        return {"error": {"name": "InvokeTimeout",
                          "message": f"invoked function {pending.get('function')!r} did not finish in time"}}
    return {"data": None}  # a sleep ends; a wait times out with None


def _record_step(state: RunState, op: dict[str, Any], limits: RuntimeLimits, base: dict[str, Any],
                 trans: Transition, now: int) -> bool:
    """Memoize a step's output; ``False`` if that ended the run (a limit was hit)."""
    size = len(pack(op.get("data")))
    if size > limits.step_output_bytes:
        err = {"name": "OutputTooLarge",
               "message": f"step {op['name']!r} returned {size} bytes; the limit is {limits.step_output_bytes}"}
        trans.attempts.append({**base, "step_id": op["id"], "name": op["name"], "attempt": state.attempt,
                               "status": "failed", "output": None, "error": err})
        _finish(state, "failed", now, error=err)
        return False
    if op["id"] not in state.steps and len(state.steps) >= limits.steps_per_run:
        err = {"name": "TooManySteps", "message": f"the run passed {limits.steps_per_run} steps"}
        _finish(state, "failed", now, error=err)
        return False
    state.steps[op["id"]] = {"data": op.get("data")}
    trans.attempts.append({**base, "step_id": op["id"], "name": op["name"], "attempt": state.attempt,
                           "status": "completed", "output": op.get("data"), "error": None})
    _note(state, trans.attempts[-1])
    state.attempt = 0
    state.token = new_id()
    trans.next_job_at = now
    return True


def _step_failed(state: RunState, fn: FunctionDef, limits: RuntimeLimits, op: dict[str, Any],
                 base: dict[str, Any], trans: Transition, now: int) -> Transition:
    row = {**base, "step_id": op["id"], "name": op["name"], "attempt": state.attempt, "output": None,
           "error": op["error"]}
    state.token = new_id()
    if op["retriable"] and state.attempt < fn.retries:
        state.attempt += 1
        trans.attempts.append({**row, "status": "retrying"})
        trans.next_job_at = now + (op.get("retry_after_ms") or backoff_ms(state.attempt, limits, fn.raw.get("backoff")))
        return trans
    # Out of retries: memoize the error; the function is called again and sees it raised.
    state.steps[op["id"]] = {"error": op["error"]}
    state.attempt = 0
    trans.attempts.append({**row, "status": "failed"})
    _note(state, row)
    trans.next_job_at = now
    return trans


def _call_failed(state: RunState, fn: FunctionDef, limits: RuntimeLimits, err: dict[str, Any],
                 retriable: bool, retry_after_ms: int | None, base: dict[str, Any], now: int) -> Transition:
    trans = Transition()
    # Keyed by how far the run got, so failures at different points stay apart in history.
    row = {**base, "step_id": f"{CALL_STEP_ID}:{len(state.steps)}", "name": "function call", "attempt": state.attempt,
           "output": None, "error": err}
    if retriable and state.attempt < fn.retries:
        state.attempt += 1
        state.token = new_id()
        trans.attempts.append({**row, "status": "retrying"})
        trans.next_job_at = now + (retry_after_ms or backoff_ms(state.attempt, limits, fn.raw.get("backoff")))
        return trans
    trans.attempts.append({**row, "status": "failed"})
    _finish(state, "failed", now, error=err)
    return trans


def _finish(state: RunState, status: str, now: int, *, output: Any = None, error: dict[str, Any] | None = None) -> None:
    state.status, state.ended_at, state.output, state.error = status, now, output, error
    state.token = new_id()
