"""A function's flow-control options, read from ``FunctionDef.raw`` and checked once.

The SDK (``sluice/_options.py``) already checks and normalises them; this module checks
again because the host must never trust a guest's introspection output, and turns them
into typed values. Durations are milliseconds. Every ``key`` is a CEL expression over
``event``; its value picks the group a limit applies to (no key: one group per function).

Also here: the names of the KV keys, so a reader sees every key the package writes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from runtime.expressions import ExpressionError, compile_expression, evaluate
from runtime.registry import FunctionDef

MAX_LIMIT = 100_000
MAX_BATCH = 1_000
MAX_PERIOD_MS = 7 * 24 * 3600 * 1000  # a week: longer flow windows are almost surely a unit mistake


class FlowOptionError(ValueError):
    """A flow-control option is malformed; the message names the function, option and problem."""


@dataclass(frozen=True)
class Concurrency:
    limit: int
    key: str | None


@dataclass(frozen=True)
class Throttle:
    limit: int
    period_ms: int
    burst: int
    key: str | None


@dataclass(frozen=True)
class RateLimit:
    limit: int
    period_ms: int
    key: str | None


@dataclass(frozen=True)
class Debounce:
    period_ms: int
    timeout_ms: int | None
    key: str | None


@dataclass(frozen=True)
class Batch:
    max_size: int
    timeout_ms: int
    key: str | None


@dataclass(frozen=True)
class FlowOptions:
    concurrency: Concurrency | None = None
    throttle: Throttle | None = None
    rate_limit: RateLimit | None = None
    debounce: Debounce | None = None
    batch: Batch | None = None
    priority: str | None = None


def parse(fn: FunctionDef) -> FlowOptions:
    """The checked flow options of ``fn``; raises :class:`FlowOptionError` for a bad one."""
    raw = fn.raw
    try:
        opts = FlowOptions(
            concurrency=_concurrency(raw.get("concurrency")),
            throttle=_throttle(raw.get("throttle")),
            rate_limit=_rate_limit(raw.get("rate_limit")),
            debounce=_debounce(raw.get("debounce")),
            batch=_batch(raw.get("batch")),
            priority=_expr(raw.get("priority"), "priority"),
        )
    except FlowOptionError as exc:
        raise FlowOptionError(f"function {fn.fqid!r}: {exc}") from None
    if opts.debounce is not None and opts.batch is not None:
        # Which event would a debounced batch keep? Inngest refuses the pair too.
        raise FlowOptionError(f"function {fn.fqid!r}: debounce and batch cannot be used together")
    return opts


class OptionsCache:
    """Parsed options per function, re-parsed when a reload gives it a new ``raw``."""

    def __init__(self) -> None:
        self._by_fn: dict[str, tuple[dict[str, Any], FlowOptions]] = {}

    def get(self, fn: FunctionDef) -> FlowOptions:
        hit = self._by_fn.get(fn.fqid)
        if hit is not None and hit[0] is fn.raw:
            return hit[1]
        opts = parse(fn)
        self._by_fn[fn.fqid] = (fn.raw, opts)
        return opts


def group(expr: str | None, event: dict[str, Any]) -> str:
    """The KV-safe token of the group ``event`` falls in: ``_`` without a key, else a hash of
    the key's value (a value that cannot be computed is its own group, ``null``)."""
    if expr is None:
        return "_"
    value = evaluate(expr, {"event": event})
    return hashlib.sha1(repr(value).encode("utf-8")).hexdigest()[:20]


def fn_token(fqid: str) -> str:
    """A KV-safe token for a function id (ids may hold characters keys may not)."""
    return hashlib.sha1(fqid.encode("utf-8")).hexdigest()[:16]


def kv_key(kind: str, fqid: str, grp: str) -> str:
    """``<kind>.<function token>.<group>``; kinds: ``c`` concurrency, ``t`` throttle,
    ``r`` rate limit, ``d`` debounce, ``b`` batch (``tr.<run id>``: a run's throttle slot)."""
    return f"{kind}.{fn_token(fqid)}.{grp}"


def _fields(value: Any, what: str, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FlowOptionError(f"{what} must be a map, got {type(value).__name__}")
    for name in required:
        if value.get(name) is None:
            raise FlowOptionError(f"{what}.{name} is required")
    return value


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FlowOptionError(f"{what} must be an integer {low}-{high}, got {value!r}")
    return value


def _ms(value: Any, what: str) -> int:
    return _int(value, f"{what} (ms)", 1, MAX_PERIOD_MS)


def _expr(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise FlowOptionError(f"{what} must be a CEL expression string, got {value!r}")
    try:
        compile_expression(value)
    except ExpressionError as exc:
        raise FlowOptionError(f"{what}: {exc}") from None
    return value


def _concurrency(value: Any) -> Concurrency | None:
    if value is None:
        return None
    v = _fields(value, "concurrency", ("limit",))
    return Concurrency(_int(v["limit"], "concurrency.limit", 1, MAX_LIMIT), _expr(v.get("key"), "concurrency.key"))


def _throttle(value: Any) -> Throttle | None:
    if value is None:
        return None
    v = _fields(value, "throttle", ("limit", "period_ms"))
    return Throttle(_int(v["limit"], "throttle.limit", 1, MAX_LIMIT), _ms(v["period_ms"], "throttle.period_ms"),
                    _int(v.get("burst", 1), "throttle.burst", 1, MAX_LIMIT), _expr(v.get("key"), "throttle.key"))


def _rate_limit(value: Any) -> RateLimit | None:
    if value is None:
        return None
    v = _fields(value, "rate_limit", ("limit", "period_ms"))
    return RateLimit(_int(v["limit"], "rate_limit.limit", 1, MAX_LIMIT),
                     _ms(v["period_ms"], "rate_limit.period_ms"), _expr(v.get("key"), "rate_limit.key"))


def _debounce(value: Any) -> Debounce | None:
    if value is None:
        return None
    v = _fields(value, "debounce", ("period_ms",))
    timeout = v.get("timeout_ms")
    return Debounce(_ms(v["period_ms"], "debounce.period_ms"),
                    None if timeout is None else _ms(timeout, "debounce.timeout_ms"),
                    _expr(v.get("key"), "debounce.key"))


def _batch(value: Any) -> Batch | None:
    if value is None:
        return None
    v = _fields(value, "batch", ("max_size", "timeout_ms"))
    return Batch(_int(v["max_size"], "batch.max_size", 1, MAX_BATCH), _ms(v["timeout_ms"], "batch.timeout_ms"),
                 _expr(v.get("key"), "batch.key"))
