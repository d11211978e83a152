"""The CLI a user types: `sluice send`, `sluice runs`, `sluice run ID` against a live dev server."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.e2e.harness import DevServer


def test_send_then_runs_then_run_shows_the_steps_and_output(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(expect_functions=3)
    sent = dev.cli("send", "shop/order.created", "--data", '{"id": 7, "total": 20}', "--json")
    assert sent.returncode == 0, sent.stderr
    [event_id] = json.loads(sent.stdout)["ids"]
    [run] = dev.wait_runs_for(event_id, 1)

    listed = dev.cli("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert run["id"] in [r["id"] for r in json.loads(listed.stdout)["data"]]

    table = dev.cli("runs")
    assert run["id"] in table.stdout and "completed" in table.stdout

    shown = dev.cli("run", run["id"])
    assert shown.returncode == 0, shown.stderr
    for step in run["steps"]:
        assert step["name"] in shown.stdout
    assert "completed" in shown.stdout

    as_json = json.loads(dev.cli("run", run["id"], "--json").stdout)
    assert as_json["data"]["status"] == "completed"

    bad = dev.cli("send", "shop/order.created", "--data", "{oops")
    assert bad.returncode != 0 and "--data" in bad.stderr
