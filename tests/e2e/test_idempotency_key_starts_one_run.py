"""A function's idempotency key (CEL): events with different ids but the same key value
start one run."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "durable"


def test_two_events_with_the_same_order_id_charge_once(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [first] = dev.send({"name": "test/charge", "data": {"order_id": 77}})
    [run] = dev.wait_runs_for(first, 1)
    assert run["output"] == {"charged": 77}
    [second] = dev.send({"name": "test/charge", "data": {"order_id": 77}})
    [other] = dev.send({"name": "test/charge", "data": {"order_id": 78}})
    assert dev.wait_runs_for(other, 1)[0]["output"] == {"charged": 78}
    time.sleep(0.5)
    assert (dev.event(second) or {}).get("runs") == []
    assert len(dev.runs(function="durable/charge-once")) == 2
