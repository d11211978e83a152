"""The shapes of protocol v1 messages as TypedDicts, for type checkers and readers.

Re-exported by ``sluice.protocol`` (loaded lazily there: importing ``typing`` is a cost
the guest would pay on every call).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class ErrorInfo(TypedDict):
    name: str
    message: str
    stack: NotRequired[str]


class RunInfo(TypedDict):
    id: str
    attempt: int


class Request(TypedDict):
    v: int
    kind: Literal["call", "introspect"]
    function: NotRequired[str]
    event: NotRequired[dict[str, Any]]
    events: NotRequired[list[dict[str, Any]]]
    steps: NotRequired[dict[str, dict[str, Any]]]
    run: NotRequired[RunInfo]
    target: NotRequired[str | None]
    now_ms: NotRequired[int | None]


class Response(TypedDict):
    v: int
    ops: list[dict[str, Any]]
