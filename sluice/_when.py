"""Instants as users write them (a ``datetime``, an ISO 8601 string, ms since the epoch) -> epoch ms.

``datetime`` is imported only when a string or a ``datetime`` is actually given: this
module is imported on every call inside the sandbox, where each import costs start-up time.
"""

from __future__ import annotations

# Year 1 to 9999 is what datetime can hold; numbers past it are typos (seconds given as ms
# would still be accepted, so the message says "milliseconds").
_MAX_MS = 253_402_300_799_999


def epoch_ms(when: object, what: str = "time") -> int:
    """Milliseconds since the Unix epoch (UTC) for ``when``:

    - an ``int`` or ``float``: milliseconds since the epoch, as is (rounded);
    - a ``datetime.datetime``: its instant; a naive one is taken as UTC;
    - a ``datetime.date``: its midnight, UTC;
    - a ``str``: ISO 8601 as ``datetime.fromisoformat`` reads it (``"2026-01-01T09:00:00Z"``,
      ``"2026-01-01T09:00:00+02:00"``, ``"2026-01-01"``); without an offset it is UTC.

    Raises ``ValueError`` naming ``what`` and the value for anything else, a negative or
    non-finite number, or a string that is not ISO 8601.
    """
    if isinstance(when, bool):
        raise ValueError(_bad(what, when))
    if isinstance(when, int | float):
        if when != when or not 0 <= when <= _MAX_MS:  # NaN, inf, negative, absurd
            raise ValueError(_bad(what, when))
        return round(when)
    import datetime

    if isinstance(when, str):
        try:
            parsed: datetime.date = datetime.datetime.fromisoformat(when.strip())
        except ValueError:
            raise ValueError(_bad(what, when)) from None
    elif isinstance(when, datetime.date):
        parsed = when
    else:
        raise ValueError(_bad(what, when))
    if not isinstance(parsed, datetime.datetime):  # a date: its midnight
        parsed = datetime.datetime(parsed.year, parsed.month, parsed.day)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    ms = (parsed - epoch) // datetime.timedelta(milliseconds=1)  # exact: no float rounding
    if ms < 0:
        raise ValueError(_bad(what, when))
    return ms


def _bad(what: str, value: object) -> str:
    return (f"bad {what} {value!r}: use a datetime (naive means UTC), an ISO 8601 string like "
            f"'2026-01-01T09:00:00Z', or milliseconds since the Unix epoch (a non-negative number)")
