"""A run that fails for good emits sluice/function.failed, which starts its on_failure
handler; a sleeping run can be cancelled; a run can be replayed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer, http

APP = Path(__file__).parent / "apps" / "durable"


def test_on_failure_runs_after_a_failure(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/explode"})
    [run] = dev.wait_runs_for(ev, 1)
    assert run["status"] == "failed"
    [handler] = dev.wait_runs_for(f"failed-{run['id']}", 1)
    assert handler["output"] == {"saw": "durable/explodes", "error": run["error"]["message"]}


def test_cancelling_a_sleeping_run_ends_it_and_it_never_wakes(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/nap", "data": {"seconds": 2}})
    deadline = time.monotonic() + 20
    run_id = None
    while time.monotonic() < deadline:
        runs = (dev.event(ev) or {}).get("runs", [])
        if runs and runs[0]["status"] == "sleeping":
            run_id = runs[0]["id"]
            break
        time.sleep(0.05)
    assert run_id
    status, body = http("POST", f"{dev.url}/v1/runs/{run_id}/cancel")
    assert status == 200 and body["data"]["status"] == "cancelled"
    time.sleep(3)  # past the sleep's end: the stale timer must not wake it
    run = dev.run(run_id)
    assert run["status"] == "cancelled"
    assert not [s for s in run["steps"] if s["name"] == "after"]
    assert http("POST", f"{dev.url}/v1/runs/NOPE/cancel")[0] == 404


def test_replay_starts_a_new_run_of_the_same_event(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/fine", "data": {"n": 5}})
    [run] = dev.wait_runs_for(ev, 1)
    status, body = http("POST", f"{dev.url}/v1/runs/{run['id']}/replay")
    assert status == 200, body
    new_id = body["data"]["id"]
    assert new_id != run["id"]
    deadline = time.monotonic() + 20
    replayed: dict[str, object] = {}
    while time.monotonic() < deadline and replayed.get("status") != "completed":
        code, got = http("GET", f"{dev.url}/v1/runs/{new_id}")
        replayed = got["data"] if code == 200 else {}
        time.sleep(0.05)
    assert replayed.get("output") == {"n": 5}
    assert http("POST", f"{dev.url}/v1/runs/{run['id']}/replay", raw=b"[1]")[0] == 400
