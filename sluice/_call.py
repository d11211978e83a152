"""One ``call`` request: check its shape, run the function once, collect the ops it produced."""

from __future__ import annotations

from sluice._context import AttrDict, Context
from sluice._errors import StepInterrupt, error_info, retry_policy
from sluice._steps import Step
from sluice.protocol import ProtocolError, pack

TYPE_CHECKING = False  # not typing's: the guest must not pay for importing typing (see protocol.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def call(fn: Callable[[Context], Any], function_id: str, request: dict[str, Any], *, app_id: str = "",
         budget: tuple[int, int] = (1, 0)) -> list[dict[str, Any]]:
    """Run ``fn`` once for a checked ``call`` request and return the ops it produced, in order.

    Without a target: the ``step`` ops of the steps run now (at most one, or several with
    checkpointing), then the op that ended the call, if any: a new step's op
    (``step_error``, ``sleep``, ...), ``planned`` ops, or the function's ``done`` or
    ``error`` (so the last step's call also returns the result). A step reached once the
    call has run all the new steps it may ends the call with no op of its own.
    With a target: the target's ``step``/``step_error`` op, or no op at all if the
    function did not reach the target (it was memoized already, or the code went elsewhere).
    Never raises for the function's own errors.
    """
    event = AttrDict(request.get("event") or {})
    raw_events = request.get("events")
    events = [event] if raw_events is None else [AttrDict(e) if isinstance(e, dict) else e for e in raw_events]
    run = request.get("run") or {}
    target = request.get("target")
    step = Step(request.get("steps") or {}, app_id=app_id, now_ms=request.get("now_ms"), target=target,
                budget=budget)
    ctx = Context(event=event, events=events, run_id=run.get("id") or "", attempt=run.get("attempt") or 0,
                  function_id=function_id, step=step)
    ops = step.ops
    try:
        value = fn(ctx)
    except StepInterrupt:
        if not step.stopped and target is None:  # raised by hand, not by a step
            _end(ops, {"op": "error", "error": {"name": "StepInterrupt", "message": "raised outside a step"},
                       "retriable": False, "retry_after_ms": None})
    except (Exception, SystemExit) as exc:
        if not step.stopped and target is None:
            retriable, after_ms = retry_policy(exc)
            _end(ops, {"op": "error", "error": error_info(exc), "retriable": retriable,
                       "retry_after_ms": after_ms})
    else:
        if not step.stopped and target is None:
            _end(ops, {"op": "done", "data": value})
    return ops


#: A call that ran steps carries the function's ``done``/``error`` after them only up to
#: this size: a step output returned as the result would otherwise be in the response
#: twice, and could push it past the host's output cap. Bigger ones come in a call of their own.
TRAILING_MAX_BYTES = 64 * 1024


def _end(ops: list[dict[str, Any]], op: dict[str, Any]) -> None:
    """Add the op that ends the function, unless it would follow this call's steps too big
    (or not encodable: a call of its own then reports that)."""
    if ops:
        try:
            if len(pack(op)) > TRAILING_MAX_BYTES:
                return
        except (TypeError, ValueError, OverflowError, RecursionError):
            return
    ops.append(op)


_CALL_FIELDS: dict[str, type] = {"event": dict, "events": list, "steps": dict, "run": dict}


def check_call(request: dict[str, Any]) -> None:
    """Raise ``ProtocolError`` naming the first malformed part of a call: event, events,
    steps (and each memoized entry), run (id, attempt), now_ms, target. The shim checks
    this before it runs any user code, so ``call`` can trust the shapes."""
    for key, typ in _CALL_FIELDS.items():
        value = request.get(key)
        if value is not None and not isinstance(value, typ):
            raise ProtocolError(f"call request field {key!r} must be a {typ.__name__}, "
                                f"got {type(value).__name__}")
    for sid, memo in (request.get("steps") or {}).items():
        if not isinstance(memo, dict):
            raise ProtocolError(f"memoized step {sid!r} must be a map, got {type(memo).__name__}")
    run = request.get("run") or {}
    attempt = run.get("attempt", 0)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise ProtocolError(f"run.attempt must be a non-negative integer, got {attempt!r}")
    if not isinstance(run.get("id", ""), str):
        raise ProtocolError(f"run.id must be a string, got {type(run['id']).__name__}")
    now_ms = request.get("now_ms")
    if now_ms is not None and (isinstance(now_ms, bool) or not isinstance(now_ms, int) or now_ms < 0):
        raise ProtocolError(f"now_ms must be a non-negative integer (ms since the epoch) or nil, got {now_ms!r}")
    target = request.get("target")
    if target is not None and (not isinstance(target, str) or not target):
        raise ProtocolError(f"target must be a step id (a non-empty string) or nil, got {target!r}")
