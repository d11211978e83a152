"""Limits fail a run with a clear error (steps a run, step output size, run state size;
small limits set through SLUICE_* stand in for the defaults), and a cron trigger fires."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "limits"
SMALL = {"SLUICE_STEPS_PER_RUN": "20", "SLUICE_RUN_STATE_BYTES": "150000", "SLUICE_STEP_OUTPUT_BYTES": "50000"}


@pytest.mark.parametrize(
    ("event", "name", "fragment"),
    [
        ({"name": "test/many", "data": {"steps": 25}}, "TooManySteps", "20 steps"),
        ({"name": "test/big"}, "StateTooLarge", "150000"),
        ({"name": "test/huge-output"}, "OutputTooLarge", "50000"),
    ],
    ids=["steps-per-run", "run-state", "step-output"],
)
def test_a_run_past_a_limit_fails_naming_it(
    dev_server: Callable[..., DevServer], event: dict[str, object], name: str, fragment: str,
) -> None:
    dev = dev_server(APP, expect_functions=4, env=SMALL)
    [ev] = dev.send(event)
    [run] = dev.wait_runs_for(ev, 1)
    assert run["status"] == "failed"
    assert run["error"]["name"] == name and fragment in run["error"]["message"], run["error"]


def test_within_the_limits_the_same_function_completes(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=4, env=SMALL)
    [ev] = dev.send({"name": "test/many", "data": {"steps": 15}})
    [run] = dev.wait_runs_for(ev, 1)
    assert run["status"] == "completed" and run["output"] == sum(range(15))


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_cron_trigger_fires_at_the_next_minute(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=4)
    deadline = time.monotonic() + 75  # the next minute boundary, plus slack
    while time.monotonic() < deadline:
        done = [r for r in dev.runs(function="limits/every-minute") if r["status"] == "completed"]
        if done:
            fired = done[0]["output"]["fired"]
            assert fired % 60_000 == 0 and fired <= done[0]["created_at"] + 1000
            return
        time.sleep(0.5)
    raise AssertionError(f"no cron run within 75 s\n{dev.logs()[-2000:]}")
