"""Kill the node and its NATS (SIGKILL, no clean-up) while runs are sleeping, waiting and
mid-step; start it again: every run still ends correctly, no step recorded twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "durable"



def test_runs_sleeping_waiting_and_mid_step_all_finish_after_a_crash(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [nap] = dev.send({"name": "test/nap", "data": {"seconds": 3}})
    [signup] = dev.send({"name": "test/signup", "data": {"id": 9, "timeout": 120}})
    [par] = dev.send({"name": "test/parallel"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if dev.status_of(nap) == "sleeping" and dev.status_of(signup) == "waiting" and dev.status_of(par) == "running":
            break
        time.sleep(0.05)
    else:
        raise AssertionError((dev.status_of(nap), dev.status_of(signup), dev.status_of(par)))
    dev.kill()  # the node and its nats-server, mid-flight

    again = dev_server(APP, port=dev.port, expect_functions=6)
    again.send({"name": "test/confirmed", "data": {"id": 9, "by": "after-restart"}})
    results = {name: again.wait_runs_for(ev, 1, timeout=90)[0]
               for name, ev in (("nap", nap), ("signup", signup), ("par", par))}
    assert results["nap"]["output"] == {"before": "awake", "after": "rested"}
    assert results["signup"]["output"] == {"confirmed": True, "by": "after-restart"}
    assert results["par"]["output"] == {"squares": [9, 16], "sum": 25}
    for run in results.values():
        completed = Counter(s["step_id"] for s in run["steps"] if s["status"] == "completed")
        assert set(completed.values()) == {1}, run["steps"]
