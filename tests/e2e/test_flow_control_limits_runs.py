"""Flow control through the node: a concurrency limit of 1 never overlaps two steps; a
rate limit skips the excess events."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "durable"


def test_concurrency_1_runs_steps_one_after_another(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    ids = dev.send([{"name": "test/serial", "data": {"n": n}} for n in range(3)])
    runs = [dev.wait_runs_for(e, 1, timeout=60)[0] for e in ids]
    assert sorted(r["output"] for r in runs) == [0, 1, 2]
    spans = sorted((s["started_at"], s["ended_at"]) for r in runs for s in r["steps"] if s["status"] == "completed")
    assert len(spans) == 3
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans  # never two at once


def test_a_rate_limit_skips_the_excess(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    ids = dev.send([{"name": "test/limited"} for _ in range(3)])
    assert dev.wait_runs_for(ids[0], 1)[0]["output"] == "ran"
    time.sleep(1.0)
    assert [len((dev.event(e) or {}).get("runs", [])) for e in ids] == [1, 0, 0]
