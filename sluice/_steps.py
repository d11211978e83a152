"""Steps, and one call of a function under the "re-run from the top" model.

The host calls a function once per new step. Every call runs it from the top;
``ctx.step.run`` returns memoized outputs instantly, and the first step without an
output runs now, records its op and unwinds the function (:class:`StepInterrupt`).
The host memoizes the output and calls again. One new step per call.
"""

from __future__ import annotations

from sluice._context import AttrDict, Context
from sluice._errors import NonRetriableError, StepError, StepInterrupt, error_info, retry_policy
from sluice.protocol import ProtocolError, step_id

TYPE_CHECKING = False  # not typing's: the guest must not pay for importing typing (see protocol.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_STEP_NAME = 256


class Step:
    """The step tools, as ``ctx.step``. Made by the SDK for each call; not built by users."""

    __slots__ = ("_memo", "_op", "_running", "_seen")

    def __init__(self, memo: dict[str, Any]) -> None:
        self._memo = memo
        self._seen: dict[str, int] = {}
        self._op: dict[str, Any] | None = None
        self._running: str | None = None

    def run(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` as the step ``name``, once per run, and return its result.

        On later calls of the function the recorded result is returned without running
        ``fn`` again. The result must be msgpack data (None, bool, int, float, str, bytes,
        lists and dicts of them); what comes back is its msgpack round trip (tuples turn
        into lists). Steps with the same name are told apart by their order.

        Raises ``ValueError`` for a bad name (empty, not a str, over 256 chars),
        ``TypeError`` if ``fn`` is not callable, :class:`StepError` if the step failed for
        good, and :class:`NonRetriableError` if called inside another step.
        """
        if self._op is not None:  # user code swallowed the interrupt; keep unwinding
            raise StepInterrupt
        check_step_name(name)
        if not callable(fn):
            raise TypeError(f"step {name!r}: fn must be callable, got {type(fn).__name__}")
        if self._running is not None:
            raise NonRetriableError(f"step.run({name!r}) was called inside step {self._running!r}: "
                                    f"steps cannot nest")
        sid = self._next_id(name)
        memo = self._memo.get(sid)
        if memo is not None:
            return _replay(name, memo)
        self._running = name
        try:
            result = fn(*args, **kwargs)
        except (Exception, SystemExit) as exc:
            retriable, after_ms = retry_policy(exc)
            self._op = {"op": "step_error", "id": sid, "name": name, "error": error_info(exc),
                        "retriable": retriable, "retry_after_ms": after_ms}
            raise StepInterrupt from None
        finally:
            self._running = None
        self._op = {"op": "step", "id": sid, "name": name, "data": result}
        raise StepInterrupt

    def _next_id(self, name: str) -> str:
        occurrence = self._seen.get(name, 0)
        self._seen[name] = occurrence + 1
        return step_id(name, occurrence)


def check_step_name(name: object) -> None:
    """Raise ``ValueError`` unless ``name`` is a non-empty str of at most 256 chars."""
    if not isinstance(name, str) or not name or len(name) > MAX_STEP_NAME:
        shown = name if not isinstance(name, str) else name[:40] + ("…" if len(name) > 40 else "")
        raise ValueError(f"bad step name {shown!r}: it must be a non-empty string of at most "
                         f"{MAX_STEP_NAME} characters")


def _replay(name: str, memo: Any) -> Any:
    if not isinstance(memo, dict):
        raise ProtocolError(f"memoized step {name!r} must be a map, got {type(memo).__name__}")
    if "error" in memo:
        err = memo["error"] if isinstance(memo["error"], dict) else {"message": str(memo["error"])}
        raise StepError(name, str(err.get("name") or "Error"), str(err.get("message") or ""),
                        str(err.get("stack") or ""))
    return memo.get("data")


def call(fn: Callable[[Context], Any], function_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run ``fn`` once for a ``call`` request and return the single op it produced.

    Raises ``ProtocolError`` if the request's event, events, steps or run have the wrong
    shape (a host bug, not the function's). Never raises for the function's own errors.
    """
    event = AttrDict(_field(request, "event", dict, {}))
    raw_events = _field(request, "events", list, None)
    events = [event] if raw_events is None else [
        AttrDict(e) if isinstance(e, dict) else e for e in raw_events]
    run = _field(request, "run", dict, {})
    step = Step(_field(request, "steps", dict, {}))
    ctx = Context(event=event, events=events, run_id=run.get("id") or "", attempt=run.get("attempt") or 0,
                  function_id=function_id, step=step)
    try:
        value = fn(ctx)
    except StepInterrupt:
        pass
    except (Exception, SystemExit) as exc:
        if step._op is None:
            retriable, after_ms = retry_policy(exc)
            return {"op": "error", "error": error_info(exc), "retriable": retriable,
                    "retry_after_ms": after_ms}
    else:
        if step._op is None:
            return {"op": "done", "data": value}
    if step._op is None:  # StepInterrupt raised by hand, not by a step
        return {"op": "error", "error": {"name": "StepInterrupt", "message": "raised outside a step"},
                "retriable": False, "retry_after_ms": None}
    return step._op


_CALL_FIELDS: dict[str, type] = {"event": dict, "events": list, "steps": dict, "run": dict}


def check_call(request: dict[str, Any]) -> None:
    """Raise ``ProtocolError`` naming the first malformed part of a call: event, events,
    steps (and each memoized entry), run (id, attempt). The shim checks this before it
    runs any user code, so ``call`` can trust the shapes."""
    for key, typ in _CALL_FIELDS.items():
        _field(request, key, typ, None)
    for sid, memo in (request.get("steps") or {}).items():
        if not isinstance(memo, dict):
            raise ProtocolError(f"memoized step {sid!r} must be a map, got {type(memo).__name__}")
    run = request.get("run") or {}
    attempt = run.get("attempt", 0)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise ProtocolError(f"run.attempt must be a non-negative integer, got {attempt!r}")
    if not isinstance(run.get("id", ""), str):
        raise ProtocolError(f"run.id must be a string, got {type(run['id']).__name__}")


def _field(request: dict[str, Any], key: str, typ: type, default: Any) -> Any:
    value = request.get(key)
    if value is None:
        return default
    if not isinstance(value, typ):
        raise ProtocolError(f"call request field {key!r} must be a {typ.__name__}, "
                            f"got {type(value).__name__}")
    return value
