"""Killing the dev server in the middle of a run and starting it again finishes the run,
with no step output recorded twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "slow"


def test_a_run_survives_a_kill_9_of_the_dev_server_and_records_each_step_once(
    dev_server: Callable[..., DevServer],
) -> None:
    dev = dev_server(APP)
    [ev] = dev.send({"name": "test/slow"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the run is part-way: one step recorded
        runs = (dev.event(ev) or {}).get("runs", [])
        if runs and any(s["status"] == "completed" for s in dev.run(runs[0]["id"])["steps"]):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the run never got part-way")
    dev.kill()

    again = dev_server(APP, port=dev.port)
    [run] = again.wait_runs_for(ev, 1, timeout=90)
    assert run["status"] == "completed", (run["error"], run["steps"])
    assert run["output"] == [1, 2, 3]
    completed = Counter(s["step_id"] for s in run["steps"] if s["status"] == "completed")
    assert len(completed) == 3
    assert set(completed.values()) == {1}, completed
