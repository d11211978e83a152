"""``sluice dev --executors 1``: a second process runs steps beside the node; one that
dies is started again; an edited app reaches it too.

The extra process logs as the node does, each line carrying ``"executor": 1`` (JSON
logs, the harness's ``SLUICE_LOG_FORMAT=json``), so its step lines say who ran a step.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.harness import DevServer, http
from tests.processes import alive

APP = '''
import sluice

app = sluice.App("multi", reuse_instances=True)


def three(ctx: sluice.Context) -> dict[str, int]:
    a = ctx.step.run("one", lambda: 1)
    b = ctx.step.run("two", lambda: a + 1)
    return {"sum": ctx.step.run("three", lambda: a + b), "version": VERSION}


VERSION = 1
app.function(id="three", trigger=sluice.event("multi/go"), retries=0)(three)
'''


def _lines(server: DevServer) -> list[dict[str, Any]]:
    out = []
    for line in server.logs().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _wait_log(server: DevServer, pred: Callable[[dict[str, Any]], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(pred(line) for line in _lines(server)):
            return
        time.sleep(0.2)
    raise AssertionError(f"no log line for {what} in {timeout} s:\n{server.logs()[-3000:]}")



def _run_burst(server: DevServer, n: int, tag: str) -> list[dict[str, Any]]:
    ids = server.send([{"name": "multi/go", "data": {"i": i, "tag": tag}} for i in range(n)])
    return [server.wait_runs_for(eid, 1)[0] for eid in ids]


def _child_pid(server: DevServer) -> int:
    starts = [ln for ln in _lines(server) if ln.get("event") == "executor process started"]
    assert starts, server.logs()[-3000:]
    return int(starts[-1]["pid"])


def test_a_second_executor_process_runs_steps_restarts_and_reloads(
    dev_server: Callable[..., DevServer], tmp_path: Path,
) -> None:
    app_dir = tmp_path / "multi"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    server = dev_server(app_dir, args=["--executors", "1", "--reload"])
    assert "1 more executor process" in server.logs()
    _wait_log(server, lambda ln: ln.get("executor") == 1 and ln.get("event") == "node started", "the child's start")
    _wait_log(server, lambda ln: ln.get("event") == "executor process ready", "the child's ready line")
    assert http("GET", server.url + "/readyz")[0] == 200

    # Both processes take jobs from the same consumers: a burst is shared between them.
    ran_by_child = 0
    for round_ in range(5):
        runs = _run_burst(server, 40, f"r{round_}")
        assert all(r["status"] == "completed" and r["output"]["sum"] == 3 for r in runs), runs[:2]
        steps = [ln for ln in _lines(server) if ln.get("event") == "step completed"]
        ran_by_child = sum(1 for ln in steps if ln.get("executor") == 1)
        if ran_by_child and ran_by_child < len(steps):
            break
    assert 0 < ran_by_child < len(steps), f"{ran_by_child} of {len(steps)} steps ran in the extra process"

    # A crashed executor process is started again, and runs still complete.
    first = _child_pid(server)
    os.kill(first, signal.SIGKILL)
    _wait_log(server, lambda ln: str(ln.get("event")).startswith("executor process exited"), "the exit")
    _wait_log(server, lambda ln: ln.get("event") == "executor process started" and ln.get("pid") != first,
              "the restart")
    assert _child_pid(server) != first
    _wait_log(server, lambda _: len([ln for ln in _lines(server) if ln.get("executor") == 1
                                     and ln.get("event") == "node started"]) == 2, "the new child's start")
    assert all(r["status"] == "completed" for r in _run_burst(server, 10, "after-kill"))

    # An edit reaches the extra process too (it watches the app as the node does).
    (app_dir / "app.py").write_text(APP.replace("VERSION = 1", "VERSION = 2"))
    _wait_log(server, lambda ln: ln.get("executor") == 1 and ln.get("event") == "reloaded", "the child's reload")
    _wait_log(server, lambda ln: ln.get("executor") is None and ln.get("event") == "reloaded", "the node's reload")
    runs = _run_burst(server, 10, "v2")
    assert {r["output"]["version"] for r in runs} == {2}

    # Stopping the dev server stops its executor processes.
    child = _child_pid(server)
    server.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(child):
        time.sleep(0.1)
    assert not alive(child)

