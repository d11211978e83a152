"""The step tools (``ctx.step``) under the "re-run from the top" model.

The host calls a function once per new step (or a few, with checkpointing). Every call
runs it from the top; a step whose id is memoized returns its recorded value at once.
A new ``run`` step runs its code and records its op; the function then goes on, so if it
returns or raises before its next step, the same call also carries its ``done`` or
``error`` op. The next step once the call's budget of new steps is spent (one by default)
unwinds the function (:class:`StepInterrupt`) without an op.

Each step kind emits one op (see ``docs/protocol.md``). Only ``run`` executes user code
here, and only a ``run`` that succeeded lets the call go on afterwards; any other new
step, and a failed ``run``, ends the call with its op. In a *targeted* call (parallel
steps) nothing but the target runs, and the call ends right after it.
"""

from __future__ import annotations

import time

from sluice._context import AttrDict
from sluice._durations import parse_duration
from sluice._errors import NonRetriableError, StepError, StepInterrupt, error_info, retry_policy
from sluice.protocol import ProtocolError, pack, step_id, unpack

TYPE_CHECKING = False  # not typing's: the guest must not pay for importing typing (see protocol.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

MAX_STEP_NAME = 256
#: An ``invoke`` with no timeout waits this long (ms): one year, the longest wait there is.
DEFAULT_INVOKE_TIMEOUT_MS = 365 * 86_400_000
_MISSING = object()


class Step:
    """The step tools, as ``ctx.step``. Made by the SDK for each call; not built by users.

    ``memo`` is the request's ``steps``; ``now_ms`` the request's clock (epoch ms);
    ``target`` the one step id a targeted call may run; ``budget`` is (max new steps,
    max ms) for this call: ``(1, 0)`` runs at most one new step (no checkpointing), after
    which the function runs on until it returns, raises, or reaches its next step.
    """

    __slots__ = ("_app_id", "_closing", "_max_ms", "_max_steps", "_memo", "_now_ms", "_ran", "_running",
                 "_seen", "_spent_ms", "_started", "_target", "ops", "stopped")

    def __init__(self, memo: dict[str, Any], *, app_id: str = "", now_ms: int | None = None,
                 target: str | None = None, budget: tuple[int, int] = (1, 0)) -> None:
        self._memo = memo
        self._app_id = app_id
        self._now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self._target = target
        self._max_steps, self._max_ms = budget
        self._seen: dict[str, int] = {}
        self._running: str | None = None
        self._ran = 0
        self._closing = False  # the call ran all the new steps it may: the next step ends it
        self._spent_ms = 0
        self._started = time.monotonic()
        #: The ops this call produced, in order; ``stopped`` once the function must unwind.
        self.ops: list[dict[str, Any]] = []
        self.stopped = False

    # --- run and parallel -----------------------------------------------------

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
        check_step_name(name)
        if not callable(fn):
            raise TypeError(f"step {name!r}: fn must be callable, got {type(fn).__name__}")
        sid = self._enter(name)
        memo = self._memo.get(sid, _MISSING)
        if memo is not _MISSING:
            return _replay(name, memo)
        return self._run_new(sid, name, fn, args, kwargs)

    def parallel(self, *branches: tuple[Any, ...]) -> list[Any]:
        """Run several ``step.run`` steps in parallel, one sandbox call each, and return
        their results in order: ``a, b = ctx.step.parallel(("a", fn_a, 1), ("b", fn_b))``.

        Each branch is a tuple ``(name, fn, *args)``, as ``step.run`` takes them (use a
        lambda or ``functools.partial`` for keyword arguments). When two or more branches
        have no output yet, the call reports them as ``planned`` without running any; the
        host then runs each in its own call. A single missing branch runs at once.
        Raises :class:`StepError` for the first branch (in order) that failed for good,
        ``ValueError``/``TypeError`` for a malformed branch.
        """
        if self.stopped:
            raise StepInterrupt
        checked = []
        for index, branch in enumerate(branches):
            if not isinstance(branch, tuple | list) or len(branch) < 2:
                raise TypeError(f"parallel branch {index}: use a tuple (name, fn, *args), got {branch!r}")
            name, fn, *args = branch
            check_step_name(name)
            if not callable(fn):
                raise TypeError(f"parallel branch {index} ({name!r}): fn must be callable, "
                                f"got {type(fn).__name__}")
            checked.append((name, fn, args))
        ids = [self._enter(name, "parallel") for name, _, _ in checked]
        new = [i for i, sid in enumerate(ids) if sid not in self._memo]
        if self._target is not None and new:
            mine = [i for i in new if ids[i] == self._target]
            if not mine:
                self._stop()  # a targeted call runs its target only
            name, fn, args = checked[mine[0]]
            self._run_new(ids[mine[0]], name, fn, args, {})
        elif len(new) == 1:
            name, fn, args = checked[new[0]]
            self._run_new(ids[new[0]], name, fn, args, {})  # returns if it succeeded: the function goes on
        elif new:
            self._stop(*({"op": "planned", "id": ids[i], "name": checked[i][0]} for i in new))
        return [_replay(checked[i][0], self._memo[sid]) for i, sid in enumerate(ids)]

    # --- steps the host carries out -------------------------------------------

    def sleep(self, name: str, duration: float | str) -> None:
        """Pause the run for ``duration`` (seconds, or ``"30s"``, ``"1d"``...), without holding a
        sandbox. The sleep counts from the call's ``now_ms`` (plus the time spent running
        steps earlier in this call). Raises ``ValueError`` for a bad name or duration."""
        ms = parse_duration(duration, f"duration of sleep {name!r}")
        sid = self._enter(name, "sleep")
        if self._memoized(sid, name) is _MISSING:
            self._stop({"op": "sleep", "id": sid, "name": name, "until_ms": self._now() + ms})

    def sleep_until(self, name: str, when: Any) -> None:
        """Pause the run until ``when``: a ``datetime`` (naive means UTC), an ISO 8601 string
        (``"2026-01-01T09:00:00Z"``), or milliseconds since the epoch. A time in the past
        resumes at once. Raises ``ValueError`` for a bad name or time."""
        from sluice._when import epoch_ms

        until = epoch_ms(when, f"time of sleep_until {name!r}")
        sid = self._enter(name, "sleep_until")
        if self._memoized(sid, name) is _MISSING:
            self._stop({"op": "sleep", "id": sid, "name": name, "until_ms": until})

    def wait_for_event(self, name: str, *, event: str, timeout: float | str, if_: str | None = None) -> Any:
        """Pause the run until an event called ``event`` arrives (and matches ``if_``, a CEL
        expression over ``event``, the triggering event, and ``async``, the awaited one),
        or ``timeout`` passes. Returns the event (an :class:`AttrDict`), or ``None`` on timeout.
        Only events sent after the wait began count. Raises ``ValueError`` for bad arguments."""
        if not isinstance(event, str) or not event or len(event) > 256:
            raise ValueError(f"wait_for_event {name!r}: bad event {event!r}: use an event name of 1-256 chars")
        if if_ is not None and not isinstance(if_, str):
            raise ValueError(f"wait_for_event {name!r}: bad if_ {if_!r}: use a CEL expression string or None")
        ms = parse_duration(timeout, f"timeout of wait_for_event {name!r}")
        sid = self._enter(name, "wait_for_event")
        found = self._memoized(sid, name)
        if found is _MISSING:
            self._stop({"op": "wait_for_event", "id": sid, "name": name, "event": event, "if": if_ or None,
                        "timeout_ms": ms})
        return AttrDict(found) if type(found) is dict else found

    def send_event(self, name: str, events: Any) -> Any:
        """Send one event (a dict) or a list of them, as the step ``name`` (so a re-run does
        not send them twice). Each needs a ``name``; ``data`` defaults to ``{}``. Returns
        ``{"ids": [...]}``, the stored events' ids. Raises ``ValueError`` naming a bad event."""
        batch = [events] if isinstance(events, dict) else events
        if not isinstance(batch, list | tuple) or not batch:
            raise ValueError(f"send_event {name!r}: use an event dict or a non-empty list of them")
        for i, item in enumerate(batch):
            ev_name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(ev_name, str) or not ev_name or len(ev_name) > 256:
                raise ValueError(f"send_event {name!r}: event {i} has no valid 'name' (a string of 1-256 "
                                 f"characters): {item!r}")
            if not isinstance(item.get("data", {}), dict):
                raise ValueError(f"send_event {name!r}: event {i} ({ev_name!r}): 'data' must be a dict")
        sid = self._enter(name, "send_event")
        found = self._memoized(sid, name)
        if found is _MISSING:
            self._stop({"op": "send_event", "id": sid, "name": name, "events": [dict(e) for e in batch]})
        return AttrDict(found) if type(found) is dict else found

    def invoke(self, name: str, *, function: str, data: dict[str, Any] | None = None,
               timeout: float | str | None = None) -> Any:
        """Run another function (``"fn"`` in this app, or ``"app/fn"``) with ``data`` as its
        event's data, wait for it to finish (up to ``timeout``, default a year) and return
        its output. Raises :class:`StepError` if it failed or timed out, ``ValueError``
        for bad arguments."""
        from sluice._app import check_id

        if not isinstance(function, str):
            raise ValueError(f"invoke {name!r}: bad function {function!r}: use 'fn' or 'app/fn'")
        app_id, slash, fn_id = function.rpartition("/")
        qualified = function if slash else f"{self._app_id}/{fn_id}"
        check_id(fn_id, f"function id in invoke {name!r}")
        check_id(app_id if slash else self._app_id, f"app id in invoke {name!r}")
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"invoke {name!r}: data must be a dict (the invoked function's event data) or None")
        ms = DEFAULT_INVOKE_TIMEOUT_MS if timeout is None else parse_duration(timeout, f"timeout of invoke {name!r}")
        sid = self._enter(name, "invoke")
        found = self._memoized(sid, name)
        if found is _MISSING:
            self._stop({"op": "invoke", "id": sid, "name": name, "function": qualified, "data": data or {},
                        "timeout_ms": ms})
        return found

    def fetch(self, name: str, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
              body: Any = None, timeout: float | str | None = None) -> Any:
        """Make an HTTP request through the node (the sandbox has no network) and return a
        :class:`~sluice.FetchResponse` (``status``, ``headers``, ``body``, ``json()``).
        Only hosts in the function's ``allow_hosts`` are reachable. Raises :class:`StepError`
        if the node refused or could not make the request, ``ValueError`` for bad arguments."""
        from sluice._fetch import DEFAULT_TIMEOUT_MS, FetchResponse, build_request

        request = build_request(name, url, method, headers, body)
        ms = DEFAULT_TIMEOUT_MS if timeout is None else parse_duration(timeout, f"timeout of fetch {name!r}")
        sid = self._enter(name, "fetch")
        found = self._memoized(sid, name)
        if found is _MISSING:
            self._stop({"op": "fetch", "id": sid, "name": name, "request": request, "timeout_ms": ms})
        return FetchResponse(found)

    # --- machinery --------------------------------------------------------------

    def _enter(self, name: str, kind: str = "run") -> str:
        """The id of the next step called ``name``, after the checks every step kind shares."""
        if self.stopped or self._closing:  # swallowed interrupt, or the call's new step already ran
            self.stopped = True
            raise StepInterrupt
        check_step_name(name)
        if self._running is not None:
            raise NonRetriableError(f"step.{kind}({name!r}) was called inside step {self._running!r}: "
                                    f"steps cannot nest")
        occurrence = self._seen.get(name, 0)
        self._seen[name] = occurrence + 1
        return step_id(name, occurrence)

    def _memoized(self, sid: str, name: str) -> Any:
        memo = self._memo.get(sid, _MISSING)
        return memo if memo is _MISSING else _replay(name, memo)

    def _run_new(self, sid: str, name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """Run a step that has no output yet and return its result: the function goes on.
        Unwinds instead if the step failed, its result cannot be encoded, or the call is
        targeted (the target's op ends it)."""
        if self._target is not None and sid != self._target:
            self._stop()
        self._running = name
        started = time.monotonic()
        try:
            result = fn(*args, **kwargs)
        except (Exception, SystemExit) as exc:
            retriable, after_ms = retry_policy(exc)
            self._stop({"op": "step_error", "id": sid, "name": name, "error": error_info(exc),
                        "retriable": retriable, "retry_after_ms": after_ms})
        finally:
            self._running = None
            self._spent_ms += int((time.monotonic() - started) * 1000)
        self._ran += 1
        op = {"op": "step", "id": sid, "name": name, "data": result}
        if self._target is not None:
            self._stop(op)
        try:  # go on with the msgpack round trip, as a later call would see it
            data = unpack(pack(result))
        except (TypeError, ValueError, OverflowError, RecursionError):
            self._stop(op)  # the response encoder names what cannot be encoded
        op["data"] = data
        self.ops.append(op)
        self._memo[sid] = {"data": data}
        if self._ran >= self._max_steps or (time.monotonic() - self._started) * 1000 >= self._max_ms:
            # No further new step in this call, but the function runs on: if it returns
            # (or fails) before its next step, this call's response says so too, which
            # saves a call per run. Its next step of any kind ends the call (see _enter).
            self._closing = True
        return data

    def _stop(self, *ops: dict[str, Any]) -> NoReturn:
        """Record ``ops`` (none in a targeted call unless it is the target's) and unwind."""
        if self._target is None or (len(ops) == 1 and ops[0]["id"] == self._target):
            self.ops.extend(ops)
        self.stopped = True
        raise StepInterrupt

    def _now(self) -> int:
        return self._now_ms + self._spent_ms


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
