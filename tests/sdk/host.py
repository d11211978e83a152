"""A tiny host for SDK tests: drives a run through the real shim, op by op, the way the
runtime does (memoize each op's outcome, run planned steps in targeted calls, call again).

Sleeps advance a fake clock; waits, invokes and fetches are answered from tables the
test gives. Every response is checked with ``sluice.protocol.decode_response``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .harness import call, run_shim

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass
class Host:
    app_dir: Path
    function: str
    event: dict[str, Any]
    now_ms: int = START_MS
    #: wait_for_event event name -> the event that arrives (None: the wait times out)
    arrivals: dict[str, Any] = field(default_factory=dict)
    #: invoke "app/fn" -> {"data": output} or {"error": {...}}
    invoked: dict[str, Any] = field(default_factory=dict)
    #: fetch url -> {"data": {"status", "headers", "body"}} or {"error": {...}}
    responses: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)
    #: (target, ops) of every call made, in order
    calls: list[tuple[str | None, list[dict[str, Any]]]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def call(self, target: str | None = None) -> list[dict[str, Any]]:
        result = run_shim(self.app_dir, call(self.function, self.event, self.steps, target=target,
                                             now_ms=self.now_ms))
        assert result.code == 0, result.stderr
        self.stderr.append(result.stderr)
        self.calls.append((target, result.ops))
        return result.ops

    def drive(self, max_calls: int = 40) -> dict[str, Any]:
        """Call until the function returns or fails; the final ``done``/``error`` op."""
        for _ in range(max_calls):
            planned = []
            for op in self.call():
                if op["op"] in ("done", "error"):
                    return op
                if op["op"] == "planned":
                    planned.append(op["id"])
                else:
                    self.apply(op)
            for sid in planned:  # each planned branch in its own targeted call
                (op,) = self.call(target=sid)
                assert op["id"] == sid and op["op"] in ("step", "step_error"), op
                self.apply(op)
        raise AssertionError(f"no done/error after {max_calls} calls: {self.calls}")

    def apply(self, op: dict[str, Any]) -> None:
        """Memoize what one op leads to (a failed step fails for good: no retries here)."""
        kind, sid = op["op"], op["id"]
        if kind == "step":
            self.steps[sid] = {"data": op["data"]}
        elif kind == "step_error":
            self.steps[sid] = {"error": op["error"]}
        elif kind == "sleep":
            self.now_ms = max(self.now_ms, op["until_ms"])
            self.steps[sid] = {"data": None}
        elif kind == "wait_for_event":
            self.steps[sid] = {"data": self.arrivals.get(op["event"])}
        elif kind == "send_event":
            ids = [f"evt-{len(self.sent) + i}" for i in range(len(op["events"]))]
            self.sent.extend(op["events"])
            self.steps[sid] = {"data": {"ids": ids}}
        elif kind == "invoke":
            self.steps[sid] = self.invoked[op["function"]]
        elif kind == "fetch":
            self.steps[sid] = self.responses[op["request"]["url"]]
        else:
            raise AssertionError(f"unexpected op {op}")
