"""Checking incoming events (DESIGN §3.1): shape, sizes, defaults.

Pure functions: the API calls :func:`parse_events` on a request body and either gets
normalised events or an :class:`EventError` carrying the HTTP status and a message
that names the offending field. Nothing is stored until every event has passed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from runtime.ids import IdMaker, now_ms
from runtime.ids import new_id as random_id
from runtime.limits import RuntimeLimits

NAME_MAX = 256
ID_MAX = 256
#: An event re-encoded as compact JSON is at most this many times the bytes it was sent
#: as (a non-ASCII character becomes a ``\uXXXX`` escape: 2 bytes to 6; a float such
#: as ``1e15`` becomes ``1000000000000000.0``: 4.5 times), plus :data:`_DEFAULTS_BYTES`
#: for the fields and keys filled in. A body whose bound fits the event limit needs no
#: event measured.
_GROWTH = 6
_DEFAULTS_BYTES = 256


class EventError(ValueError):
    """A rejected request: ``status`` is 400 (shape) or 413 (size)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_events(body: bytes, limits: RuntimeLimits, *, received_ms: int | None = None) -> list[dict[str, Any]]:
    """Parse a request body (one event or a JSON array of events) into normalised events.

    Each returned event has ``id``, ``name``, ``data``, ``ts``, ``user`` and, if given, ``v``.
    Raises :class:`EventError` (400 or 413) naming the problem.
    """
    if len(body) > limits.request_bytes:
        raise EventError(413, f"request body is {len(body)} bytes; the limit is {limits.request_bytes}")
    if not body.strip():
        raise EventError(400, "request body is empty: send a JSON event or an array of events")
    try:
        doc = _loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(400, f"request body is not valid JSON: {exc}") from None
    received = now_ms() if received_ms is None else received_ms
    measure = _GROWTH * len(body) + _DEFAULTS_BYTES > limits.event_bytes
    if isinstance(doc, dict):
        return [normalise(doc, "event", limits, received, measure=measure)]
    if isinstance(doc, list):
        if not doc:
            raise EventError(400, "the array of events is empty")
        if len(doc) > limits.request_events:
            raise EventError(413, f"{len(doc)} events in one request; the limit is {limits.request_events}")
        ids = IdMaker(received)
        try:
            return [normalise(ev, "", limits, received, measure=measure, new_id=ids) for ev in doc]
        except EventError:
            pass
        # Checked again naming each event (``events[i]``), so the error says which one
        # failed: the checks depend on the event alone, so the same one fails again.
        return [normalise(ev, f"events[{i}]", limits, received, measure=measure, new_id=ids)
                for i, ev in enumerate(doc)]
    raise EventError(400, f"request body must be a JSON object or array, not {_json_type(doc)}")


_DECODER = json.JSONDecoder()  # what json.loads uses, without its own options


def _loads(body: bytes) -> Any:
    """``json.loads(body)``: the same value, or the same error.

    A body that starts with ``{`` or ``[`` and then a byte other than NUL is UTF-8 to
    ``json.loads`` (no BOM, not UTF-16 or UTF-32), so it is decoded here as ``json.loads``
    would and read without its two whitespace scans (about half its time for one event).
    Anything else, or any error, goes to ``json.loads`` itself.
    """
    if body[:1] in (b"{", b"[") and body[1:2] != b"\0":
        try:
            text = body.decode("utf-8", "surrogatepass")
            doc, end = _DECODER.raw_decode(text)
        except ValueError:  # UnicodeDecodeError, JSONDecodeError: json.loads says which
            pass
        else:
            if end == len(text) or not text[end:].strip(" \t\n\r"):  # JSON's whitespace only
                return doc
    return json.loads(body)


def normalise(ev: Any, where: str, limits: RuntimeLimits, received: int, *, measure: bool = True,
              new_id: Callable[[], str] | None = None) -> dict[str, Any]:
    """Check one event and fill its defaults; :class:`EventError` names ``where`` on failure.

    ``measure=False`` skips measuring the event against ``limits.event_bytes``: for a
    caller that knows it fits (see :func:`parse_events`). ``new_id`` makes a missing id.
    """
    if not isinstance(ev, dict):
        raise EventError(400, f"{where} must be an object, not {_json_type(ev)}")
    name = ev.get("name")
    if not isinstance(name, str) or not name.strip():
        raise EventError(400, f"{where}.name is required: a non-empty string")
    if len(name) > NAME_MAX:
        raise EventError(400, f"{where}.name is {len(name)} characters; the limit is {NAME_MAX}")
    data = ev.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError(400, f"{where}.data must be an object, not {_json_type(data)}")
    out: dict[str, Any]
    if len(ev) == 1 + ("data" in ev) and type(received) is int and received >= 0:
        # The common case: only a name (and data), so the rest are their defaults.
        out = {"id": new_id() if new_id is not None else random_id(received), "name": name, "data": data,
               "ts": received, "user": {}}
    else:
        out = _rest(ev, where, received, new_id, name, data)
    if measure:
        size = len(json.dumps(out, separators=(",", ":")).encode("utf-8"))
        if size > limits.event_bytes:
            raise EventError(413, f"{where} is {size} bytes; the limit is {limits.event_bytes} an event")
    return out


def _rest(ev: dict[str, Any], where: str, received: int, new_id: Callable[[], str] | None,
          name: str, data: dict[str, Any]) -> dict[str, Any]:
    """:func:`normalise` past the name and data: the ``ts``, ``id``, ``user`` and ``v`` fields."""
    ts = ev.get("ts", received)
    if ts is None:
        ts = received
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise EventError(400, f"{where}.ts must be a non-negative integer (ms since the epoch)")
    event_id = ev.get("id")
    if event_id is None or event_id == "":
        event_id = new_id() if new_id is not None else random_id(received)
    elif not isinstance(event_id, str) or len(event_id) > ID_MAX:
        raise EventError(400, f"{where}.id must be a string of at most {ID_MAX} characters")
    user = ev.get("user", {})
    if user is None:
        user = {}
    if not isinstance(user, dict):
        raise EventError(400, f"{where}.user must be an object, not {_json_type(user)}")
    out: dict[str, Any] = {"id": event_id, "name": name, "data": data, "ts": ts, "user": user}
    v = ev.get("v")
    if v is not None:
        if not isinstance(v, str):
            raise EventError(400, f"{where}.v must be a string")
        out["v"] = v
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)
