"""What a function receives: the event(s), the run, the step tools, a logger."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: the guest must not pay for importing typing (see protocol.py)
if TYPE_CHECKING:
    from typing import Any

    from sluice._steps import Step

    _Dict = dict[str, Any]
else:
    _Dict = dict


class AttrDict(_Dict):
    """A dict whose keys also read as attributes: ``event.data["id"]`` or ``event.data.id``.

    A nested plain dict read through an attribute is wrapped the same way (once; the
    wrapper replaces it in place). Item access returns values untouched. A missing key
    read as an attribute raises ``AttributeError`` naming it. Still a ``dict``, so it
    encodes to msgpack like one.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(f"no key {name!r} (keys: {', '.join(map(str, self)) or 'none'})") from None
        if type(value) is dict:
            value = AttrDict(value)
            dict.__setitem__(self, name, value)
        return value


class Logger:
    """A small logger for function authors; writes ``LEVEL message`` lines to stderr.

    Stderr is what the sandbox keeps as the step's logs. Messages format like the
    ``logging`` module's (``log.info("charged %s", amount)``) without importing it.
    """

    __slots__ = ("_prefix",)

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix

    def debug(self, msg: object, *args: object) -> None:
        self._write("DEBUG", msg, args)

    def info(self, msg: object, *args: object) -> None:
        self._write("INFO", msg, args)

    def warning(self, msg: object, *args: object) -> None:
        self._write("WARNING", msg, args)

    def error(self, msg: object, *args: object) -> None:
        self._write("ERROR", msg, args)

    def exception(self, msg: object, *args: object) -> None:
        """``error`` plus the traceback of the exception being handled."""
        import traceback

        self._write("ERROR", msg, args)
        sys.stderr.write(traceback.format_exc())

    def _write(self, level: str, msg: object, args: tuple[object, ...]) -> None:
        text = str(msg)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError):
                text = f"{text} {args!r}"
        sys.stderr.write(f"{level} {self._prefix}{text}\n")
        sys.stderr.flush()


class Context:
    """Passed to every function call.

    - ``event``: the triggering event (``name``, ``data``, ``id``, ``ts``, ...), an :class:`AttrDict`
    - ``events``: every triggering event (one unless batched), each an :class:`AttrDict`
    - ``run_id``: the run's id; ``attempt``: 0 on the first try of the current step, then 1, 2...
    - ``function_id``: the id of the function being called
    - ``step``: the step tools (``ctx.step.run(...)``)
    - ``log``: a :class:`Logger` writing to the step's logs (stderr)
    """

    __slots__ = ("attempt", "event", "events", "function_id", "log", "run_id", "step")

    def __init__(self, *, event: AttrDict, events: list[AttrDict], run_id: str, attempt: int,
                 function_id: str, step: Step) -> None:
        self.event = event
        self.events = events
        self.run_id = run_id
        self.attempt = attempt
        self.function_id = function_id
        self.step = step
        self.log = Logger()

    def __repr__(self) -> str:
        return (f"Context(function_id={self.function_id!r}, run_id={self.run_id!r}, "
                f"attempt={self.attempt}, event={self.event.get('name')!r})")
