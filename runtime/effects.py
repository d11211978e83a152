"""Ops the node carries out for the guest before recording them: ``send_event`` and ``fetch``.

Each becomes an ordinary ``step`` op (its result memoized like any step output) or a
``step_error``. Both are idempotent across a retry of the same call: sent events get ids
derived from the run and step, so the bus's dedupe makes a second send a no-op.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import structlog

from bus import Bus
from runtime.egress import Egress, EgressDenied
from runtime.events import EventError, normalise
from runtime.ids import now_ms
from runtime.limits import RuntimeLimits
from runtime.registry import FunctionDef
from runtime.state import RunState
from runtime.streams import event_message

log = structlog.get_logger("sluice.effects")

NODE_OPS = frozenset({"send_event", "fetch"})


def _error(op: dict[str, Any], name: str, message: str, retriable: bool) -> dict[str, Any]:
    return {"op": "step_error", "id": op["id"], "name": op["name"], "retriable": retriable,
            "error": {"name": name, "message": message}}


class Effects:
    def __init__(self, bus: Bus, egress: Egress, limits: RuntimeLimits) -> None:
        self._bus = bus
        self._egress = egress
        self._limits = limits

    async def perform(self, ops: list[dict[str, Any]], state: RunState, fn: FunctionDef) -> list[dict[str, Any]]:
        """``ops`` with every node op replaced by its outcome (a ``step`` or ``step_error``)."""
        out = []
        for op in ops:
            if op.get("op") == "send_event":
                out.append(await self._send(op, state))
            elif op.get("op") == "fetch":
                out.append(await self._fetch(op, fn))
            else:
                out.append(op)
        return out

    async def _send(self, op: dict[str, Any], state: RunState) -> dict[str, Any]:
        received = now_ms()
        events = []
        try:
            for i, raw in enumerate(op["events"]):
                if isinstance(raw, dict) and not raw.get("id"):
                    raw = {**raw, "id": f"{state.id}-{op['id'][:16]}-{i}"}  # stable across retries
                events.append(normalise(raw, f"step {op['name']!r}: events[{i}]", self._limits, received))
        except EventError as exc:
            return _error(op, "InvalidEvent", exc.message, False)
        await self._bus.publish_batch([event_message(ev) for ev in events])
        return {"op": "step", "id": op["id"], "name": op["name"], "data": {"ids": [ev["id"] for ev in events]}}

    async def _fetch(self, op: dict[str, Any], fn: FunctionDef) -> dict[str, Any]:
        request = op.get("request")
        if not isinstance(request, dict):
            return _error(op, "InvalidRequest", "fetch op needs 'request' (a map)", False)
        allow = [str(h) for h in (fn.raw.get("allow_hosts") or [])]
        try:
            response = await self._egress.fetch(request, allow, op.get("timeout_ms"))
        except EgressDenied as exc:
            log.warning("egress denied", function=fn.fqid, url=request.get("url"), reason=str(exc))
            return _error(op, "FetchDenied", str(exc), False)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _error(op, "FetchError", f"fetching {request.get('url')!r} failed: {exc or type(exc).__name__}",
                          True)
        log.info("egress", function=fn.fqid, url=request.get("url"), status=response["status"])
        return {"op": "step", "id": op["id"], "name": op["name"], "data": response}
