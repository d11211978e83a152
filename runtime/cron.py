"""Cron triggers: a durable timer per schedule, kept in NATS.

For each function with a cron trigger, the scheduler publishes the *next* tick as an
event ``sluice/scheduled.timer`` held back until its time (``deliver_at``: a NATS
message schedule, which survives restarts). When the tick arrives it starts that one
function, and the next tick is published. The tick's event id names the function and
the fire time, so every node publishing "the next tick" publishes the same message
(deduped), and a tick starts its run once. Ticks missed while no node ran are skipped,
not replayed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

TIMER_EVENT = "sluice/scheduled.timer"


def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Paris')") from None


def check_cron(expr: str, tz: str | None) -> None:
    """Raise ``ValueError`` naming the problem if ``expr``/``tz`` is not a usable schedule."""
    _zone(tz)
    if not croniter.is_valid(expr):
        raise ValueError(f"invalid cron expression {expr!r}")


def next_fire_ms(expr: str, tz: str | None, after_ms: int) -> int:
    """The first time strictly after ``after_ms`` (ms since epoch) that ``expr`` fires in ``tz``."""
    start = datetime.fromtimestamp(after_ms / 1000, UTC).astimezone(_zone(tz))
    return int(croniter(expr, start).get_next(float) * 1000)


def tick_event(function: str, trigger: dict[str, Any], fire_ms: int) -> dict[str, Any]:
    """The timer event for ``function``'s ``trigger`` firing at ``fire_ms``."""
    return {"id": f"cron-{function}-{trigger['cron']}-{fire_ms}".replace(" ", "_"), "name": TIMER_EVENT,
            "ts": fire_ms, "user": {},
            "data": {"function": function, "cron": trigger["cron"], "tz": trigger.get("tz"), "fire_ms": fire_ms}}
