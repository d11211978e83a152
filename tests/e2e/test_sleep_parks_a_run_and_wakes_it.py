"""`ctx.step.sleep` parks the run (status sleeping, no sandbox held) and wakes it when due."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "durable"


def test_a_run_sleeps_for_its_duration_then_finishes(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    sent_at = time.monotonic()
    [ev] = dev.send({"name": "test/nap", "data": {"seconds": 2}})
    deadline = time.monotonic() + 20
    seen_sleeping = False
    while time.monotonic() < deadline and not seen_sleeping:
        runs = (dev.event(ev) or {}).get("runs", [])
        seen_sleeping = bool(runs) and runs[0]["status"] == "sleeping"
        time.sleep(0.05)
    assert seen_sleeping, "the run never showed as sleeping"
    [run] = dev.wait_runs_for(ev, 1, timeout=30)
    assert run["status"] == "completed"
    assert run["output"] == {"before": "awake", "after": "rested"}
    assert time.monotonic() - sent_at >= 2.0
    nap = [s for s in run["steps"] if s["name"] == "nap"]
    assert [s["status"] for s in nap] == ["completed"]
