"""Errors a function raises to steer retries, the one the SDK raises for a failed step,
and the conversion of any exception into the protocol's error map.

``traceback`` is imported only when an error is actually reported, to keep the
per-call import cost of the happy path small.
"""

from __future__ import annotations

import os

from sluice._durations import parse_duration

# Guest errors travel back to the host and into run history; keep them a sane size.
_MAX_MESSAGE = 8 * 1024
_MAX_STACK = 32 * 1024
_SDK_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class NonRetriableError(Exception):
    """Fail now, with no further retries (of the step it was raised in, or of the function)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryAfterError(Exception):
    """Retry, but not before ``retry_after`` (seconds, or a duration string like ``"30s"``).

    Raises ``ValueError`` if ``retry_after`` is not a valid duration.
    """

    def __init__(self, message: str, retry_after: float | str) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_ms = parse_duration(retry_after, "retry_after")


class StepError(Exception):
    """Raised by ``ctx.step.run`` when the step failed for good (its retries are spent).

    ``step`` is the step's name; ``name``, ``message`` and ``stack`` describe the error the
    step raised (``name`` is its exception class name). Catch it to recover; left uncaught,
    the function fails without further retries (retrying would only replay the same error).
    """

    def __init__(self, step: str, name: str, message: str, stack: str = "") -> None:
        super().__init__(f"step {step!r} failed: {name}: {message}")
        self.step = step
        self.name = name
        self.message = message
        self.stack = stack


class StepInterrupt(BaseException):
    """Internal: unwinds the user's function once a step has produced its op.

    A ``BaseException`` so that ``except Exception`` in user code lets it through. Code
    that swallows it anyway gains nothing: the op recorded before it was raised wins.
    """


def error_info(exc: BaseException) -> dict[str, str]:
    """The protocol's error map ``{"name", "message", "stack"}`` for ``exc``.

    Frames inside the SDK itself are left out of the stack: users need their own code.
    """
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_SDK_DIR):
        tb = tb.tb_next
    stack = "".join(traceback.format_exception(type(exc), exc, tb))
    if isinstance(exc, StepError):
        name, message = "StepError", str(exc)
        if exc.stack:
            stack += "\nThe step's own error:\n" + exc.stack
    else:
        name, message = type(exc).__name__, str(exc)
    return {"name": name, "message": _clip(message, _MAX_MESSAGE), "stack": _clip(stack, _MAX_STACK)}


def retry_policy(exc: BaseException) -> tuple[bool, int | None]:
    """``(retriable, retry_after_ms)`` for an exception a step or function raised."""
    if isinstance(exc, NonRetriableError | StepError):
        return False, None
    if isinstance(exc, RetryAfterError):
        return True, exc.retry_after_ms
    return True, None


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 20] + "\n…(truncated)"
