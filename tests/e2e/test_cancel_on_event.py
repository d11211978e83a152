"""`cancel_on`: a matching event cancels a sleeping run; a non-matching one does not."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "durable"



def test_a_matching_event_cancels_the_run_and_another_does_not(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [a] = dev.send({"name": "test/cart", "data": {"cart": "A"}})
    [b] = dev.send({"name": "test/cart", "data": {"cart": "B"}})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (dev.status_of(a) == dev.status_of(b) == "sleeping"):
        time.sleep(0.05)
    assert dev.status_of(a) == dev.status_of(b) == "sleeping"
    dev.send({"name": "test/checkout", "data": {"cart": "A"}})
    [run_a] = dev.wait_runs_for(a, 1, timeout=20)
    assert run_a["status"] == "cancelled"
    time.sleep(0.5)
    assert dev.status_of(b) == "sleeping"


def test_bulk_cancel_by_function_and_time_range(dev_server: Callable[..., DevServer]) -> None:
    from tests.e2e.harness import http

    dev = dev_server(APP, expect_functions=6)
    ids = dev.send([{"name": "test/cart", "data": {"cart": f"C{i}"}} for i in range(3)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(dev.status_of(e) == "sleeping" for e in ids):
        time.sleep(0.05)
    assert http("POST", f"{dev.url}/v1/runs/cancel", {"function": "durable/remind", "to": 1})[1]["data"] == {
        "cancelled": 0, "ids": []}  # nothing was created before 1970
    status, body = http("POST", f"{dev.url}/v1/runs/cancel", {"function": "durable/remind"})
    assert status == 200 and body["data"]["cancelled"] == 3
    deadline = time.monotonic() + 5  # history is written just after the answer
    while time.monotonic() < deadline and not all(dev.status_of(e) == "cancelled" for e in ids):
        time.sleep(0.05)
    assert all(dev.status_of(e) == "cancelled" for e in ids)
    assert http("POST", f"{dev.url}/v1/runs/cancel", {"from": 1})[0] == 400
