"""Flow-control and other function options, checked at decoration and turned into the
maps ``introspect`` reports (durations in ms, keys fixed). The host enforces them; the SDK
only makes sure they are well formed, with messages naming the option and the problem.

Every ``key`` and ``if`` is a CEL expression string over ``event`` (the host evaluates it).
"""

from __future__ import annotations

from sluice._cron import cron
from sluice._durations import parse_duration

TYPE_CHECKING = False  # not typing's: the guest must not pay for importing typing (see protocol.py)
if TYPE_CHECKING:
    from typing import Any

MAX_LIMIT = 100_000
MAX_BATCH = 1_000
MAX_CHECKPOINT_STEPS = 1_000
#: ``checkpoint=True``: up to this many new steps, or this long (ms), in one call.
CHECKPOINT_DEFAULT = {"max_steps": 100, "max_ms": 1_000}
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-:*[]")


class OptionError(ValueError):
    """A bad function option; the message names the function, the option and the problem."""


def check_options(fn_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The introspected form of every option in ``raw`` that is not None (others are left out).

    Raises :class:`OptionError` (a ``ValueError``) naming the first bad one.
    """
    out: dict[str, Any] = {}
    for option, value in raw.items():
        if value is None:
            continue
        try:
            checked = _CHECKS[option](value)
        except OptionError as exc:
            raise OptionError(f"function {fn_id!r}: bad {option} {value!r}: {exc}") from None
        except ValueError as exc:  # from parse_duration & co: already names the value
            raise OptionError(f"function {fn_id!r}: bad {option}: {exc}") from None
        if checked is not None:  # checkpoint=False
            out[_RENAMED.get(option, option)] = checked
    return out


def trigger(item: Any) -> dict[str, Any]:
    """One trigger map, ``{"event", "if"}`` or ``{"cron", "tz"}``; raises ``ValueError``."""
    from sluice._app import event

    if isinstance(item, str):
        return event(item)
    if isinstance(item, dict) and isinstance(item.get("event"), str):
        return event(item["event"], item.get("if"))
    if isinstance(item, dict) and "cron" in item:
        return cron(item["cron"], item.get("tz"))
    raise OptionError("use sluice.event(name, if_=...) or sluice.cron(schedule, tz=...)")


def _fields(value: Any, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OptionError(f"use a dict with keys {', '.join(allowed)}")
    for key in value:
        if key not in allowed:
            raise OptionError(f"unknown key {key!r} (known: {', '.join(allowed)})")
    for key in required:
        if value.get(key) is None:
            raise OptionError(f"{key!r} is required")
    return value


def _limit(value: Any, what: str = "limit", high: int = MAX_LIMIT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise OptionError(f"{what} must be an integer 1-{high}")
    return value


def _expr(value: Any, what: str = "key") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise OptionError(f"{what} must be a non-empty string (a CEL expression) or None")
    return value


def _ms(value: Any, what: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    ms = parse_duration(value, what)
    if ms == 0:
        raise OptionError(f"{what} must be more than 0")
    return ms


def _concurrency(value: Any) -> dict[str, Any]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"limit": value}
    v = _fields(value, ("limit", "key"), ("limit",))
    return {"limit": _limit(v["limit"]), "key": _expr(v.get("key"))}


def _throttle(value: Any) -> dict[str, Any]:
    v = _fields(value, ("limit", "period", "key", "burst"), ("limit", "period"))
    return {"limit": _limit(v["limit"]), "period_ms": _ms(v["period"], "period"), "key": _expr(v.get("key")),
            "burst": _limit(v.get("burst", 1), "burst")}


def _rate_limit(value: Any) -> dict[str, Any]:
    v = _fields(value, ("limit", "period", "key"), ("limit", "period"))
    return {"limit": _limit(v["limit"]), "period_ms": _ms(v["period"], "period"), "key": _expr(v.get("key"))}


def _debounce(value: Any) -> dict[str, Any]:
    v = _fields(value, ("period", "key", "timeout"), ("period",))
    return {"period_ms": _ms(v["period"], "period"), "key": _expr(v.get("key")),
            "timeout_ms": _ms(v.get("timeout"), "timeout", optional=True)}


def _batch(value: Any) -> dict[str, Any]:
    v = _fields(value, ("max_size", "timeout", "key"), ("max_size", "timeout"))
    return {"max_size": _limit(v["max_size"], "max_size", MAX_BATCH), "timeout_ms": _ms(v["timeout"], "timeout"),
            "key": _expr(v.get("key"))}


def _cancel_on(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise OptionError("use a list of {'event': name, 'if': expr, 'timeout': duration}")
    out = []
    for item in items:
        v = _fields(item, ("event", "if", "timeout"), ("event",))
        if not isinstance(v["event"], str) or not v["event"] or len(v["event"]) > 256:
            raise OptionError("'event' must be an event name of 1-256 characters")
        out.append({"event": v["event"], "if": _expr(v.get("if"), "'if'"),
                    "timeout_ms": _ms(v.get("timeout"), "timeout", optional=True)})
    return out


def _backoff(value: Any) -> dict[str, Any]:
    v = _fields(value, ("base", "max"), ())
    base = _ms(v.get("base", "1s"), "base")
    high = _ms(v.get("max", "10m"), "max")
    assert base is not None and high is not None
    if high < base:
        raise OptionError("'max' must be at least 'base'")
    return {"base_ms": base, "max_ms": high}


def _allow_hosts(value: Any) -> list[str]:
    if not isinstance(value, list | tuple):
        raise OptionError("use a list of host names like ['api.stripe.com', '*.example.com']")
    out = []
    for host in value:
        if not isinstance(host, str) or not host or len(host) > 262 or not _HOST_CHARS.issuperset(host.lower()):
            raise OptionError(f"{host!r} is not a host name (letters, digits, '.', '-', an optional ':port', "
                              f"and '*.' only as a prefix)")
        if "*" in host and (not host.startswith("*.") or "*" in host[2:]):
            raise OptionError(f"{host!r}: '*' is allowed only as a '*.' prefix")
        out.append(host.lower())
    return out


def _checkpoint(value: Any) -> dict[str, int] | None:
    if value is True:
        return dict(CHECKPOINT_DEFAULT)
    if value is False:
        return None
    v = _fields(value, ("max_steps", "max_time"), ())
    steps = _limit(v.get("max_steps", CHECKPOINT_DEFAULT["max_steps"]), "max_steps", MAX_CHECKPOINT_STEPS)
    ms = _ms(v.get("max_time", CHECKPOINT_DEFAULT["max_ms"] / 1000), "max_time")
    assert ms is not None
    return {"max_steps": steps, "max_ms": ms}


def _start_timeout(value: Any) -> int:
    ms = _ms(value, "start_timeout")
    assert ms is not None
    return ms


def _cel(value: Any) -> str:
    expr = _expr(value, "it")
    if expr is None:
        raise OptionError("it must be a non-empty string (a CEL expression)")
    return expr


# option name -> its checker; the name is also the introspected key, except for these:
_RENAMED = {"start_timeout": "start_timeout_ms"}
_CHECKS: dict[str, Any] = {
    "concurrency": _concurrency, "throttle": _throttle, "rate_limit": _rate_limit, "debounce": _debounce,
    "batch": _batch, "priority": _cel, "idempotency": _cel, "cancel_on": _cancel_on, "backoff": _backoff,
    "allow_hosts": _allow_hosts, "checkpoint": _checkpoint, "start_timeout": _start_timeout,
}
