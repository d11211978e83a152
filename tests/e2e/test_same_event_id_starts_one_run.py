"""Two events with the same id inside the dedupe window are one event: one run."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "flaky"


def test_sending_the_same_event_id_twice_starts_one_run(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=2)
    first = dev.send({"name": "test/fine", "id": "order-42"})
    second = dev.send([{"name": "test/fine", "id": "order-42"}])
    assert first == second == ["order-42"]
    [run] = dev.wait_runs_for("order-42", 1)
    assert run["status"] == "completed"
    time.sleep(1.0)  # give a wrongly duplicated run time to appear
    assert len(dev.event("order-42")["runs"]) == 1  # type: ignore[index]
    assert len(dev.runs(function="flaky/fine")) == 1
