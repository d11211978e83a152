"""A run whose state grows past NATS's 1 MB message size still completes: the bus
carries the large value through the object store by reference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "flaky"


def test_a_run_with_1_4_mb_of_step_outputs_completes(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=4)
    [ev] = dev.send({"name": "test/big", "data": {"pad": "p" * 400_000}})
    [run] = dev.wait_runs_for(ev, 1)
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"sizes": [700_000, 700_000]}
    outputs = {s["name"]: s["output"] for s in run["steps"] if s["status"] == "completed"}
    assert len(outputs["first-blob"]) == 700_000 and set(outputs["second-blob"]) == {"b"}


def test_a_big_step_output_returned_as_the_result_completes(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=4)
    [ev] = dev.send({"name": "test/big-result"})
    [run] = dev.wait_runs_for(ev, 1)
    assert run["status"] == "completed", run["error"]
    assert run["output"] == "c" * 3_000_000
    assert [(s["name"], s["status"]) for s in run["steps"]] == [("blob", "completed")]
