"""Cron triggers: ``sluice.cron("0 9 * * 1", tz="Europe/Paris")``.

The SDK checks the expression's shape (five fields, each a list of ``*``, ``n``, ``a-b``,
with an optional ``/step``, values in range, month and weekday names); the host computes
the schedule. No ``re``: this module is imported on every call inside the sandbox.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the guest must not pay for importing typing (see protocol.py)
if TYPE_CHECKING:
    from typing import Any

#: (name, lowest, highest) of the five fields, in order.
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 7))
MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NAMES = {3: _MONTHS, 4: _DAYS}  # field index -> names it accepts
_TZ_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+-")
MAX_CRON = 256


def cron(schedule: str, tz: str | None = None) -> dict[str, Any]:
    """A trigger: run the function on a schedule, a standard 5-field cron expression
    (minute hour day-of-month month day-of-week; ``"0 9 * * mon-fri"``) or a macro
    (``"@daily"``, ``"@hourly"``, ...).

    ``tz`` is an IANA time zone name (``"Europe/Paris"``) the schedule is read in; ``None``
    means UTC. The SDK checks its characters; the host checks that the zone exists.
    Returns ``{"cron": schedule, "tz": tz}`` (the schedule with its spaces normalised).
    Raises ``ValueError`` naming the schedule and what is wrong with it.
    """
    if not isinstance(schedule, str) or not schedule.strip() or len(schedule) > MAX_CRON:
        raise ValueError(f"bad cron schedule {schedule!r}: use a string like '0 9 * * 1' "
                         f"(minute hour day-of-month month day-of-week)")
    text = " ".join(schedule.split())
    problem = _check(text)
    if problem:
        raise ValueError(f"bad cron schedule {schedule!r}: {problem}")
    if tz is not None and (not isinstance(tz, str) or not tz or len(tz) > 64 or not _TZ_CHARS.issuperset(tz)):
        raise ValueError(f"bad cron tz {tz!r} for schedule {schedule!r}: use an IANA time zone name "
                         f"like 'Europe/Paris', or None for UTC")
    return {"cron": text, "tz": tz}


def _check(text: str) -> str | None:
    """What is wrong with a normalised expression, or None."""
    if text.startswith("@"):
        return None if text.lower() in MACROS else f"unknown macro (use one of {', '.join(sorted(MACROS))})"
    fields = text.split(" ")
    if len(fields) != 5:
        return f"it has {len(fields)} fields; cron needs 5 (minute hour day-of-month month day-of-week)"
    for index, field in enumerate(fields):
        name, low, high = FIELDS[index]
        for part in field.split(","):
            problem = _check_part(part.lower(), index, low, high)
            if problem:
                return f"{name} field {field!r}: {problem}"
    return None


def _check_part(part: str, index: int, low: int, high: int) -> str | None:
    base, slash, step = part.partition("/")
    if slash and (not _digits(step) or int(step) == 0):
        return f"bad step {step!r} (use a positive integer)"
    if base in ("*", "?"):
        return None if base == "*" or index in (2, 4) else "'?' is only allowed in day fields"
    first, dash, last = base.partition("-")
    values = [first, last] if dash else [first]
    numbers = []
    for value in values:
        number = _NAMES.get(index, {}).get(value) if value.isalpha() else None
        if number is None:
            if not _digits(value):
                return f"{value!r} is not a number" + (" or a name" if index in _NAMES else "")
            number = int(value)
        if not low <= number <= high:
            return f"{number} is out of range {low}-{high}"
        numbers.append(number)
    if dash and numbers[0] > numbers[1]:
        return f"range {base!r} runs backwards"
    return None


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
