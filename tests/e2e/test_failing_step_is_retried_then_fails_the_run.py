"""A step that always raises is retried, then fails the run with the error recorded;
another function on the same node keeps working."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "flaky"


def test_a_failing_step_is_retried_then_the_run_fails_with_every_attempt_recorded(
    dev_server: Callable[..., DevServer],
) -> None:
    dev = dev_server(APP, expect_functions=2)
    [ev] = dev.send({"name": "test/fail"})
    [run] = dev.wait_runs_for(ev, 1)
    assert run["status"] == "failed"
    assert "the disk is on fire" in run["error"]["message"]
    boom = [s for s in run["steps"] if s["name"] == "boom"]
    assert [s["attempt"] for s in boom] == [0, 1, 2]
    assert [s["status"] for s in boom] == ["retrying", "retrying", "failed"]
    assert all("the disk is on fire" in s["error"]["message"] for s in boom)

    [ok] = dev.send({"name": "test/fine"})
    [fine] = dev.wait_runs_for(ok, 1)
    assert fine["status"] == "completed" and fine["output"] == {"ok": 1}
