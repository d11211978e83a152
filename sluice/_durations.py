"""Durations as users write them (``30``, ``1.5``, ``"500ms"``, ``"10m"``, ``"1h30m"``) -> milliseconds.

Kept free of ``re`` on purpose: this module is imported on every call inside the sandbox,
where each imported module costs start-up time (CPython on WASI is ~10x slower to import).
"""

from __future__ import annotations

#: Milliseconds per unit. No months or years: their length is not fixed.
UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

# Anything past this is a typo, not a plan (about 292 million years of ms fits, but no one means it).
_MAX_MS = 100 * 366 * 86_400_000
_DIGITS = "0123456789."


def parse_duration(value: object, what: str = "duration") -> int:
    """Milliseconds in ``value``: a number of seconds (int or float) or a string of
    ``<number><unit>`` parts with units ms, s, m, h, d, w (``"1h30m"`` is 90 minutes).

    Raises ``ValueError`` naming ``what`` and the value if it is negative, not finite,
    over 100 years, has an unknown unit, or is not a number or string at all.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(_bad(what, value))
    if isinstance(value, str):
        ms = _parse_text(value, what)
    else:
        # ``value != value`` is NaN; the bounds also reject +-inf.
        if value != value or value < 0 or value * 1000 > _MAX_MS:
            raise ValueError(_bad(what, value))
        ms = value * 1000
    if ms > _MAX_MS:
        raise ValueError(_bad(what, value))
    return round(ms)


def _parse_text(value: str, what: str) -> float:
    text = value.strip().lower()
    if not text:
        raise ValueError(_bad(what, value))
    total = 0.0
    i, n = 0, len(text)
    while i < n:
        j = i
        while j < n and text[j] in _DIGITS:
            j += 1
        k = j
        while k < n and "a" <= text[k] <= "z":
            k += 1
        unit = text[j:k]
        if j == i or unit not in UNITS_MS:
            raise ValueError(_bad(what, value))
        try:
            number = float(text[i:j])
        except ValueError:  # "1.2.3s"
            raise ValueError(_bad(what, value)) from None
        total += number * UNITS_MS[unit]
        i = k
        while i < n and text[i] == " ":
            i += 1
    return total


def _bad(what: str, value: object) -> str:
    return (f"bad {what} {value!r}: use seconds (a non-negative number) or a string like "
            f"'500ms', '30s', '10m', '1h', '1d', '1w' (parts may combine: '1h30m')")
