"""CEL expressions (the ``if_`` of triggers): compile once, evaluate per event.

Variables are Inngest's: ``event`` (the triggering event) and, for waits, ``async``
(the incoming event). A result that is not ``true`` — ``false``, a missing field, a
type error — means "no match"; evaluation never raises. A syntax error is found when
the function is registered, so a user sees it at once, not per event.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cel
import structlog

log = structlog.get_logger("sluice.expressions")


class ExpressionError(ValueError):
    """An expression that does not compile; the message shows where."""


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Any:
    """Compile ``source`` (cached); raise :class:`ExpressionError` if it is not valid CEL."""
    try:
        return cel.compile(source)
    except Exception as exc:
        raise ExpressionError(f"invalid expression {source!r}: {exc}") from None


def matches(source: str | None, variables: dict[str, Any]) -> bool:
    """Whether ``source`` evaluates to ``true`` with ``variables``; ``None`` matches everything."""
    if not source:
        return True
    program = compile_expression(source)
    try:
        return program.execute(variables) is True
    except Exception as exc:  # missing fields and type errors mean "no match"
        log.debug("expression did not match", expression=source, reason=str(exc))
        return False


def evaluate(source: str, variables: dict[str, Any]) -> Any:
    """The value of ``source`` (e.g. an idempotency key), or ``None`` if it cannot be computed."""
    try:
        return compile_expression(source).execute(variables)
    except ExpressionError:
        raise
    except Exception as exc:
        log.debug("expression has no value", expression=source, reason=str(exc))
        return None
