"""What flow control tells its callers: admit/skip/hold an event, start a run, wait."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from runtime.ids import new_id


class Admission(enum.Enum):
    """What the scheduler does with one (function, event) match."""

    START = "start"  # create the run now, as without flow control
    SKIP = "skip"  # rate limited: no run for this event, ever
    HELD = "held"  # debounce or batch kept it: a later Start carries it (see FlowControl.start)


@dataclass(frozen=True)
class Wait:
    """Not now: try the step again at ``at_ms`` (ms since epoch). ``reason`` is
    ``"concurrency"`` or ``"throttle"``. ``nonce`` makes a re-published job distinct from
    the one being handled (the job stream dedupes by message id)."""

    at_ms: int
    reason: str
    nonce: str = field(default_factory=lambda: f"flow-{new_id()}")


@dataclass(frozen=True)
class Start:
    """A debounce or batch window closed: start ONE run of ``fn`` (an ``app/fn`` id) with id
    ``run_id`` (stable for this window, so starting it twice is one run), ``event`` as
    ``ctx.event`` and ``events`` as ``ctx.events`` (oldest first). ``created_ms``: when the
    window opened. ``kind``/``key``/``window`` identify it for :meth:`FlowControl.settle`."""

    fn: str
    run_id: str
    event: dict[str, Any]
    events: list[dict[str, Any]]
    created_ms: int
    kind: str
    key: str
    window: str
