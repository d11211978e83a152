"""An app: a named set of functions, each with its triggers and options.

Everything here is checked when the decorator runs (at import of the user's module), so
a mistake shows up at ``introspect`` with a message naming it, not at the first event.
"""

from __future__ import annotations

from sluice._call import call
from sluice._durations import parse_duration
from sluice._options import check_options
from sluice._options import trigger as check_trigger
from sluice.protocol import VERSION, pack

TYPE_CHECKING = False  # not typing's: the guest must not pay for importing typing (see protocol.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from sluice._context import Context

    F = TypeVar("F", bound=Callable[[Context], Any])

MAX_ID = 128
MAX_EVENT_NAME = 256
MAX_RETRIES = 20
_ID_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | frozenset("-_")
_CO_ASYNC = 0x80 | 0x200  # CO_COROUTINE | CO_ASYNC_GENERATOR, read without importing inspect
#: The event the host sends when a run fails for good; ``on_failure`` handlers trigger on it.
FAILED_EVENT = "sluice/function.failed"


def event(name: str, if_: str | None = None) -> dict[str, Any]:
    """A trigger: run the function for each event called ``name`` (1-256 chars).

    ``if_`` is an optional CEL expression over ``event`` (``"event.data.total > 100"``);
    the host evaluates it, the SDK only checks it is a string. Returns
    ``{"event": name, "if": if_ or None}``. Raises ``ValueError`` naming a bad argument.
    """
    if not isinstance(name, str) or not name or len(name) > MAX_EVENT_NAME:
        raise ValueError(f"bad event name {name!r}: it must be a string of 1-{MAX_EVENT_NAME} characters")
    if if_ is not None and not isinstance(if_, str):
        raise ValueError(f"bad if_ for event {name!r}: it must be a string (a CEL expression) or None")
    return {"event": name, "if": if_ or None}



class Function:
    """One registered function: its options as the host sees them, and the Python callable.

    ``options`` holds the introspected form of every option that was given (flow control,
    ``backoff``, ``allow_hosts``, ``checkpoint``, ``on_failure``...); unset ones are absent.
    """

    __slots__ = ("fn", "id", "name", "options", "retries", "timeout_ms", "triggers")

    def __init__(self, fn: Callable[[Context], Any], id: str, name: str, triggers: list[dict[str, Any]],
                 retries: int, timeout_ms: int | None, options: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.id = id
        self.name = name
        self.triggers = triggers
        self.retries = retries
        self.timeout_ms = timeout_ms
        self.options = options or {}

    @property
    def budget(self) -> tuple[int, int]:
        """(max new steps, max ms) in one call: ``(1, 0)`` unless the function checkpoints."""
        checkpoint = self.options.get("checkpoint")
        return (checkpoint["max_steps"], checkpoint["max_ms"]) if checkpoint else (1, 0)

    def describe(self) -> dict[str, Any]:
        """This function's entry in an ``introspect`` response."""
        return {"id": self.id, "name": self.name, "triggers": self.triggers, "retries": self.retries,
                "timeout_ms": self.timeout_ms, **self.options}

    def __repr__(self) -> str:
        return f"Function(id={self.id!r}, triggers={self.triggers!r})"


class App:
    """A named set of functions: ``app = sluice.App("shop")``.

    ``id`` is lowercase letters, digits, ``-`` and ``_``, starting with a letter or
    digit, at most 128 chars; anything else raises ``ValueError`` naming it.

    ``reuse_instances=True`` lets the host answer many calls of this app version from one
    warm guest (a WASM instance), one call at a time, instead of a fresh guest per call:
    module globals then carry over from one call (and run) to the next, as in a warm
    Lambda. Each call still has its own deadline and output caps, and a guest that fails
    a call is discarded. It removes the interpreter's start-up from every call (about a
    millisecond a call instead of ~80 ms of CPU). Default ``False``: a fresh guest per call.
    """

    def __init__(self, id: str, *, reuse_instances: bool = False) -> None:
        check_id(id, "app id")
        if not isinstance(reuse_instances, bool):
            raise ValueError(f"bad reuse_instances {reuse_instances!r} for app {id!r}: use True or False")
        self.id = id
        self.reuse_instances = reuse_instances
        self._functions: dict[str, Function] = {}

    @property
    def functions(self) -> dict[str, Function]:
        """The registered functions by id (a copy)."""
        return dict(self._functions)

    def function(self, *, id: str, trigger: Any = None, retries: int = 3, timeout: float | str | None = None,
                 name: str | None = None, concurrency: int | dict[str, Any] | None = None,
                 throttle: dict[str, Any] | None = None, rate_limit: dict[str, Any] | None = None,
                 debounce: dict[str, Any] | None = None, batch: dict[str, Any] | None = None,
                 priority: str | None = None, idempotency: str | None = None, cancel_on: Any = None,
                 on_failure: Callable[[Context], Any] | None = None, start_timeout: float | str | None = None,
                 backoff: dict[str, Any] | None = None, allow_hosts: list[str] | None = None,
                 checkpoint: bool | dict[str, Any] | None = None) -> Callable[[F], F]:
        """Register the decorated callable ``fn(ctx)`` as the function ``id``.

        - ``trigger``: ``sluice.event(...)``, ``sluice.cron(...)``, an event name, or a list
          of them; ``None`` for a function that runs only when invoked.
        - ``retries``: retries after the first attempt of each step, 0-20 (default 3);
          ``backoff``: ``{"base": "1s", "max": "10m"}`` (exponential, with jitter).
        - ``timeout``: how long a run may take from its start to its end; ``start_timeout``:
          how long it may wait queued before starting. Seconds or duration strings.
        - flow control: ``concurrency`` (an int or ``{"limit", "key"}``), ``throttle``
          (``{"limit", "period", "key", "burst"}``), ``rate_limit`` (``{"limit", "period", "key"}``),
          ``debounce`` (``{"period", "key", "timeout"}``), ``batch`` (``{"max_size", "timeout",
          "key"}``), ``priority`` and ``idempotency`` (CEL expressions), ``cancel_on`` (a list of
          ``{"event", "if", "timeout"}``).
        - ``on_failure``: a function ``fn(ctx)`` run when a run fails for good; it is
          registered as ``f"{id}-failure"``, triggered by ``sluice/function.failed``.
        - ``allow_hosts``: hosts ``ctx.step.fetch`` may reach; ``checkpoint``: ``True`` or
          ``{"max_steps", "max_time"}`` to run several new steps in one call.
        - ``name``: a human-readable name (default: the id).

        Returns the callable unchanged. Raises ``ValueError`` naming the bad option, an id
        already used in this app, or ``TypeError`` for an ``async def`` (not supported yet).
        """
        check_id(id, "function id")
        if id in self._functions:
            raise ValueError(f"function id {id!r} is already used in app {self.id!r}")
        triggers = _check_triggers(trigger, id)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
            raise ValueError(f"function {id!r}: bad retries {retries!r}: use an integer 0-{MAX_RETRIES}")
        timeout_ms = None if timeout is None else parse_duration(timeout, f"timeout of function {id!r}")
        if timeout_ms == 0:
            raise ValueError(f"function {id!r}: timeout must be more than 0")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"function {id!r}: bad name {name!r}: use a non-empty string")
        options = check_options(id, {
            "concurrency": concurrency, "throttle": throttle, "rate_limit": rate_limit, "debounce": debounce,
            "batch": batch, "priority": priority, "idempotency": idempotency, "cancel_on": cancel_on,
            "start_timeout": start_timeout, "backoff": backoff, "allow_hosts": allow_hosts,
            "checkpoint": checkpoint})
        failure = None
        if on_failure is not None:
            failure = self._failure_handler(id, name or id, on_failure, retries, timeout_ms)
            options["on_failure"] = failure.id

        def register(fn: F) -> F:
            _check_callable(fn, id)
            for taken in (id, failure.id if failure else id):
                if taken in self._functions:
                    raise ValueError(f"function id {taken!r} is already used in app {self.id!r}")
            self._functions[id] = Function(fn, id, name or id, triggers, retries, timeout_ms, options)
            if failure is not None:
                self._functions[failure.id] = failure
            return fn

        return register

    def _failure_handler(self, fn_id: str, name: str, handler: Any, retries: int,
                         timeout_ms: int | None) -> Function:
        """The function that runs ``handler`` when a run of ``fn_id`` fails for good."""
        failure_id = f"{fn_id}-failure"
        check_id(failure_id, f"on_failure function id (from function {fn_id!r})")
        if failure_id in self._functions:
            raise ValueError(f"function {fn_id!r}: on_failure needs the id {failure_id!r}, which is already used "
                             f"in app {self.id!r}")
        if not callable(handler):
            raise ValueError(f"function {fn_id!r}: bad on_failure {handler!r}: use a function fn(ctx)")
        _check_callable(handler, failure_id)
        trig = event(FAILED_EVENT, if_=f"event.data.function_id == '{self.id}/{fn_id}'")
        return Function(handler, failure_id, f"{name} (on failure)", [trig], retries, timeout_ms,
                        {"failure_of": fn_id})

    def introspect(self) -> dict[str, Any]:
        """The ``introspect`` response: the app and its functions. Calls no user code."""
        doc = {"v": VERSION, "app": self.id, "functions": [f.describe() for f in self._functions.values()]}
        if self.reuse_instances:
            doc["reuse_instances"] = True
        return doc

    def respond(self, request: dict[str, Any]) -> bytes:
        """The encoded response to a decoded, checked request (see ``sluice.protocol``).

        Raises ``ProtocolError`` only for a malformed request; the function's own failures,
        an unknown function id and unencodable results all become an ``error`` op.
        """
        if request["kind"] == "introspect":
            return pack(self.introspect())
        fid = request["function"]
        function = self._functions.get(fid)
        if function is None:
            known = ", ".join(repr(k) for k in self._functions) or "none"
            return error_response("UnknownFunction",
                                  f"app {self.id!r} has no function {fid!r} (known: {known})")
        return encode_ops(call(function.fn, fid, request, app_id=self.id, budget=function.budget))

    def __repr__(self) -> str:
        return f"App({self.id!r}, functions={list(self._functions)!r})"


def check_id(value: object, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``value`` is a valid app or function id."""
    if (not isinstance(value, str) or not value or len(value) > MAX_ID or value[0] not in _ID_FIRST
            or not _ID_REST.issuperset(value)):
        raise ValueError(f"bad {what} {value!r}: use lowercase letters, digits, '-' and '_', "
                         f"starting with a letter or digit, at most {MAX_ID} characters")


def _check_triggers(trigger: Any, fn_id: str) -> list[dict[str, Any]]:
    if trigger is None:
        return []
    items = trigger if isinstance(trigger, list | tuple) else [trigger]
    out = []
    for item in items:
        try:
            out.append(check_trigger(item))
        except ValueError as exc:
            raise ValueError(f"function {fn_id!r}: bad trigger {item!r}: {exc}") from None
    return out


def _check_callable(fn: Any, fn_id: str) -> None:
    if not callable(fn):
        raise TypeError(f"function {fn_id!r}: @app.function must decorate a callable")
    if getattr(getattr(fn, "__code__", None), "co_flags", 0) & _CO_ASYNC:
        raise TypeError(f"function {fn_id!r}: async functions are not supported yet; use a plain def")


def error_response(name: str, message: str, stack: str = "") -> bytes:
    """A call response holding one non-retriable ``error`` op."""
    err = {"name": name, "message": message}
    if stack:
        err["stack"] = stack
    op = {"op": "error", "error": err, "retriable": False, "retry_after_ms": None}
    return pack({"v": VERSION, "ops": [op]})


def encode_ops(ops: list[dict[str, Any]]) -> bytes:
    """``{"v": 1, "ops": ops}`` as msgpack. The first op whose data msgpack cannot encode is
    replaced, with every op after it, by an ``UnencodableOutput`` error op naming it; the
    ops before it are kept (steps that completed stay completed)."""
    try:
        return pack({"v": VERSION, "ops": ops})
    except (TypeError, ValueError, OverflowError, RecursionError):  # RecursionError: a cycle
        pass
    good = []
    for op in ops:
        try:
            pack(op)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            who = f"step {op['name']!r}" if "name" in op else "the function"
            bad = _find_unencodable(op.get("data"), "result", 0) or str(exc)
            message = (f"{who} returned a value msgpack cannot encode: {bad}; return None, bool, int, float, "
                       f"str, bytes, or lists and dicts of them")
            good.append({"op": "error", "error": {"name": "UnencodableOutput", "message": message},
                         "retriable": False, "retry_after_ms": None})
            break
        good.append(op)
    return pack({"v": VERSION, "ops": good})


_SCALARS = (type(None), bool, float, str, bytes, bytearray)


def _find_unencodable(value: Any, path: str, depth: int) -> str | None:
    """Where the first value msgpack cannot encode sits: ``"type 'set' at result['items'][2]"``."""
    if depth > 256:
        return f"nesting deeper than 256 levels at {path} (a cycle?)"
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, int):
        return None if -(2**63) <= value < 2**64 else f"an int too large for 64 bits at {path}"
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _find_unencodable(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = (_find_unencodable(key, f"a key of {path}", depth + 1)
                     or _find_unencodable(item, f"{path}[{key!r}]", depth + 1))
            if found:
                return found
        return None
    return f"type {type(value).__name__!r} at {path}"
