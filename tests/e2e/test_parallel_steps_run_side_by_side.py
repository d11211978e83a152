"""Parallel steps: each branch runs in its own sandbox call, at the same time, and the run
continues once all are recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "durable"


def test_two_branches_run_concurrently_and_the_run_continues_after_both(
    dev_server: Callable[..., DevServer],
) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/parallel"})
    [run] = dev.wait_runs_for(ev, 1, timeout=60)
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"squares": [9, 16], "sum": 25}
    done = {s["name"]: s for s in run["steps"] if s["status"] == "completed"}
    assert set(done) == {"square-3", "square-4", "sum"}
    a, b = done["square-3"], done["square-4"]
    # Each branch sleeps 1 s in its own sandbox: they overlap in time.
    assert a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"], (a, b)
