"""`ctx.step.wait_for_event` returns the matching event (CEL on `event` and `async`), or
None at the timeout; an event sent before the wait is stored is still seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "durable"


def _wait_status(dev: DevServer, event_id: str, status: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runs = (dev.event(event_id) or {}).get("runs", [])
        if runs and runs[0]["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"run of {event_id} never became {status}")


def test_a_matching_event_resumes_the_run_and_others_do_not(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/signup", "data": {"id": 1}})
    _wait_status(dev, ev, "waiting")
    dev.send({"name": "test/confirmed", "data": {"id": 999, "by": "someone else"}})
    time.sleep(0.5)
    assert dev.event(ev)["runs"][0]["status"] == "waiting"  # type: ignore[index]
    dev.send({"name": "test/confirmed", "data": {"id": 1, "by": "email"}})
    [run] = dev.wait_runs_for(ev, 1)
    assert run["output"] == {"confirmed": True, "by": "email"}


def test_a_wait_times_out_with_none(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/signup", "data": {"id": 2, "timeout": 1}})
    [run] = dev.wait_runs_for(ev, 1, timeout=30)
    assert run["output"] == {"confirmed": False}


def test_an_event_sent_right_after_the_trigger_is_not_missed(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    # Sent together: the confirmation is stored before the guest even asks to wait.
    ids = dev.send([{"name": "test/signup", "data": {"id": 3}},
                    {"name": "test/confirmed", "data": {"id": 3, "by": "race"}}])
    [run] = dev.wait_runs_for(ids[0], 1, timeout=30)
    assert run["output"] == {"confirmed": True, "by": "race"}
