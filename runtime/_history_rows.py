"""The history store's rows: API dicts in, SQL parameters out; SQL rows in, API dicts
out. Validation lives here too, so a bad record fails in the caller, by name, before
anything is queued."""

from __future__ import annotations

import json
import time
from typing import Any

RUN_STATUSES = frozenset({"queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled"})
_EVENT_FIELDS = frozenset({"id", "name", "data", "ts", "received_at"})
_RUN_FIELDS = frozenset({"id", "function", "app", "event_id", "status", "created_at", "started_at", "ended_at",
                         "output", "error", "attempt", "steps"})


def to_json(value: Any) -> str | None:
    """JSON text for ``value`` (``None`` stays SQL NULL); never raises.

    Values inside that JSON cannot hold (bytes, sets, dates) become their ``repr``;
    a value that cannot be encoded at all (NaN, a cycle, non-string keys) is stored as
    one ``repr`` string.
    """
    if value is None:
        return None
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=repr)
    except (ValueError, TypeError, RecursionError):
        return json.dumps(repr(value)[:65536])


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _first(*values: Any) -> Any:
    """The first value that is not None (0 is a time like any other)."""
    return next(v for v in values if v is not None)


def _require(doc: dict[str, Any], what: str, keys: tuple[str, ...]) -> None:
    if not isinstance(doc, dict):
        raise TypeError(f"a {what} must be a dict, not {type(doc).__name__}")
    for key in keys:
        if doc.get(key) is None:
            raise ValueError(f"a {what} needs {key!r}; got keys {sorted(doc)}")


def event_doc(row: tuple[Any, ...]) -> dict[str, Any]:
    extra = load(row[5]) or {}
    return {**extra, "id": row[0], "name": row[1], "data": load(row[2]), "ts": row[3], "received_at": row[4]}


def run_doc(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        **(load(row[11]) or {}),
        "id": row[0], "function": row[1], "app": row[2], "event_id": row[3], "status": row[4],
        "created_at": row[5], "started_at": row[6], "ended_at": row[7], "output": load(row[8]),
        "error": load(row[9]), "attempt": row[10],
    }


def step_doc(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "step_id": row[0], "name": row[1], "attempt": row[2], "status": row[3], "output": load(row[4]),
        "error": load(row[5]), "started_at": row[6], "ended_at": row[7], "duration_ms": row[8],
        "timings": load(row[9]) or {}, "logs": row[10] or "",
    }


def event_params(ev: dict[str, Any], *, now: int) -> tuple[Any, ...]:
    """INSERT_EVENT's parameters. Keys beyond the fixed fields (``user``, ``v``) are kept."""
    _require(ev, "event", ("id", "name"))
    received = _first(ev.get("received_at"), ev.get("ts"), now)
    extra = {k: v for k, v in ev.items() if k not in _EVENT_FIELDS}
    return (ev["id"], ev["name"], to_json(ev.get("data") or {}), _first(ev.get("ts"), received), received,
            to_json(extra) if extra else None)


def run_params(run: dict[str, Any]) -> tuple[Any, ...]:
    """UPSERT_RUN's parameters; ``ValueError`` for a missing field or an unknown status."""
    _require(run, "run", ("id", "function", "status"))
    if run["status"] not in RUN_STATUSES:
        raise ValueError(f"run status {run['status']!r} is not one of {', '.join(sorted(RUN_STATUSES))}")
    app = run.get("app") or run["function"].split("/", 1)[0]
    extra = {k: v for k, v in run.items() if k not in _RUN_FIELDS}
    return (run["id"], run["function"], app, run.get("event_id"), run["status"],
            _first(run.get("created_at"), now_ms()), run.get("started_at"), run.get("ended_at"),
            to_json(run.get("output")), to_json(run.get("error")), run.get("attempt") or 0,
            to_json(extra) if extra else None)


def step_params(run_id: str, step: dict[str, Any]) -> tuple[Any, ...]:
    """UPSERT_STEP's parameters; ``ValueError`` for a missing field."""
    _require(step, "step", ("step_id", "status"))
    return (run_id, step["step_id"], step.get("name") or step["step_id"], step.get("attempt") or 0, step["status"],
            to_json(step.get("output")), to_json(step.get("error")), step.get("started_at"), step.get("ended_at"),
            step.get("duration_ms"), to_json(step.get("timings") or {}), step.get("logs") or "")


