"""`ctx.step.send_event` starts other runs and returns their event ids (memoized);
`ctx.step.invoke` runs another function and returns its result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "durable"


def test_sent_events_start_their_functions(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/fan-out"})
    [run] = dev.wait_runs_for(ev, 1)
    assert run["status"] == "completed"
    sent = run["output"]["sent"]
    assert len(sent) == 2
    outputs = sorted(dev.wait_runs_for(eid, 1)[0]["output"]["n"] for eid in sent)
    assert outputs == [1, 2]


def test_invoke_returns_the_other_functions_result(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/invoke", "data": {"value": 21}})
    [run] = dev.wait_runs_for(ev, 1)
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"doubled": 42}
    assert len(dev.runs(function="durable/double")) == 1
