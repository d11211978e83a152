"""Windows of held events, shared by debounce and batch: the record, its fires, its closing.

One record per (function, group) in the flow bucket::

    {"fn": "app/fn",
     "open":   {"w": id, "since": ms, "due": ms, "cap": ms|None, "events": [...]} | None,
     "closed": {id: <a window as above>, ...}}

Events join the ``open`` window (see :mod:`debounce` and :mod:`batch`). A window closes
when its fire message arrives with the deadline it still has (or, for a batch, when it
fills up): it moves to ``closed`` by CAS, then a :class:`Start` for it is handed out, and
only once its run exists is it removed (:meth:`Windows.settle`). So a crash anywhere
leaves the window either open (its fire comes again) or closed (the unacked fire is
redelivered and starts the same run id again) — never lost, never started as two runs.

Every write comes first and its fire is published after, so a fire never arrives before
the state it refers to. A crash between the two leaves a window without a fire: the next
event for its group re-publishes it, and :meth:`Windows.recover` re-publishes every one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bus import Bus, KeyValue
from runtime.flow.decisions import Start
from runtime.flow.store import CAS_TRIES, FIRE_SUBJECT, Fire, FlowBusyError, backoff, read, write
from runtime.ids import derived_id, new_id


class Windows:
    def __init__(self, bus: Bus, kv: KeyValue, clock: Callable[[], int], kind: str) -> None:
        self._bus = bus
        self._kv = kv
        self._clock = clock
        self.kind = kind  # "debounce" or "batch"

    async def fire_at(self, fqid: str, key: str, window: dict[str, Any], *, now: bool = False,
                      tag: str = "") -> None:
        """Publish the fire of ``window``: at its deadline, or at once (``now``: it is closed).
        ``tag`` makes the message distinct from earlier fires of the same deadline, which
        the stream would otherwise drop as duplicates."""
        fire = Fire(self.kind, fqid, key, window["w"], int(window["due"]))
        at = None if now or fire.due <= self._clock() else fire.due / 1000
        await self._bus.publish(FIRE_SUBJECT, fire.encode(), msg_id=fire.msg_id + (f":{tag}" if tag else ""),
                                deliver_at=at)

    async def on_fire(self, fire: Fire) -> Start | None:
        """Close the window ``fire`` names if it is due and hand out its :class:`Start`;
        ``None`` if the fire is stale (the window moved its deadline, or already started)."""
        for attempt in range(CAS_TRIES):
            doc, rev = await read(self._kv, fire.key)
            if doc is None:
                return None
            closed: dict[str, Any] = doc.get("closed") or {}
            if fire.window in closed:
                return self._start(fire.fn, fire.key, closed[fire.window])
            window = doc.get("open")
            if window is None or window["w"] != fire.window or int(window["due"]) != fire.due:
                return None  # an older deadline: the fire for the newer one is on its way
            doc = {**doc, "open": None, "closed": {**closed, fire.window: window}}
            if await write(self._kv, fire.key, doc, rev):
                return self._start(fire.fn, fire.key, window)
            await backoff(attempt)
        raise FlowBusyError(f"{self.kind} record {fire.key!r} kept changing; the fire will come again")

    async def settle(self, key: str, window_id: str) -> None:
        """Forget closed window ``window_id`` (its run exists now). Safe to call twice."""
        for attempt in range(CAS_TRIES):
            doc, rev = await read(self._kv, key)
            closed = dict((doc or {}).get("closed") or {})
            if doc is None or closed.pop(window_id, None) is None:
                return
            idle = doc.get("open") is None and not closed
            if await write(self._kv, key, None if idle else {**doc, "closed": closed}, rev):
                return
            await backoff(attempt)
        raise FlowBusyError(f"{self.kind} record {key!r} kept changing; the fire will come again")

    async def recover(self, prefix: str) -> int:
        """Re-publish the fire of every window under ``prefix`` (for after a crash between a
        write and its publish). Extra fires are harmless; returns how many were sent."""
        tag = f"recover-{new_id()}"
        sent = 0
        for key in await self._kv.keys(prefix):
            doc, _ = await read(self._kv, key)
            if doc is None:
                continue
            for window in (doc.get("closed") or {}).values():
                await self.fire_at(doc["fn"], key, window, now=True, tag=tag)
                sent += 1
            if doc.get("open") is not None:
                await self.fire_at(doc["fn"], key, doc["open"], tag=tag)
                sent += 1
        return sent

    def _start(self, fqid: str, key: str, window: dict[str, Any]) -> Start:
        events: list[dict[str, Any]] = list(window["events"])
        since = int(window["since"])
        run_id = derived_id(since, f"flow/{self.kind}/{fqid}/{window['w']}")
        if self.kind == "debounce":  # the last event is the one that counts
            return Start(fqid, run_id, events[-1], [events[-1]], since, self.kind, key, window["w"])
        return Start(fqid, run_id, events[0], events, since, self.kind, key, window["w"])


def empty(fqid: str) -> dict[str, Any]:
    return {"fn": fqid, "open": None, "closed": {}}


def holds(doc: dict[str, Any], event_id: str) -> dict[str, Any] | None:
    """The window of ``doc`` already holding event ``event_id`` (a redelivered event), if any."""
    windows: list[dict[str, Any]] = [*(doc.get("closed") or {}).values(), *([doc["open"]] if doc.get("open") else [])]
    for window in windows:
        if any(e.get("id") == event_id for e in window["events"]):
            return window
    return None
