"""Priority: an integer from the function's CEL ``priority`` expression, in seconds of head start.

As in Inngest, the value is clamped to -600..600 and anything that is not a whole number
(a missing field, a string, an error) counts as 0. A float is truncated toward zero.
"""

from __future__ import annotations

from typing import Any

from runtime.expressions import evaluate

PRIORITY_MIN = -600
PRIORITY_MAX = 600


def priority_of(expr: str | None, event: dict[str, Any]) -> int:
    """The clamped priority of ``event`` under ``expr`` (0 without an expression)."""
    if expr is None:
        return 0
    value = evaluate(expr, {"event": event})
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN
        return 0
    if isinstance(value, float) and abs(value) == float("inf"):
        return PRIORITY_MAX if value > 0 else PRIORITY_MIN
    return max(PRIORITY_MIN, min(PRIORITY_MAX, int(value)))
