"""Checkpointing: consecutive steps run in one sandbox call, each recorded; a crash in the
middle of such a call loses nothing recorded and records nothing twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "durable"


def test_ten_steps_take_one_sandbox_call(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/ten"})
    [run] = dev.wait_runs_for(ev, 1)
    assert run["status"] == "completed" and run["output"] == sum(range(10))
    steps = [s for s in run["steps"] if s["status"] == "completed"]
    assert len(steps) == 10
    assert len({(s["started_at"], s["ended_at"]) for s in steps}) == 1  # one call recorded them all


def test_a_crash_mid_call_finishes_with_each_step_recorded_once(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/ten", "data": {"slow": True}})  # ~3.6 s in one call
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runs = (dev.event(ev) or {}).get("runs", [])
        if runs and runs[0]["status"] == "running":
            break
        time.sleep(0.05)
    time.sleep(1.0)  # part-way through the checkpointed call
    dev.kill()
    again = dev_server(APP, port=dev.port, expect_functions=6)
    [run] = again.wait_runs_for(ev, 1, timeout=90)
    assert run["status"] == "completed" and run["output"] == sum(range(10)) * 2
    completed = Counter(s["step_id"] for s in run["steps"] if s["status"] == "completed")
    assert len(completed) == 10 and set(completed.values()) == {1}
