"""More flow control and timing through the node: debounce keeps the last event, batch
starts one run for several events, throttle spaces run starts, a finish timeout fails a
run that outlives it, sleep_until wakes at its time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer

APP = Path(__file__).parent / "apps" / "durable"


def _runs_of(dev: DevServer, function: str, count: int, timeout: float = 30) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in dev.runs(function=function) if r["status"] in ("completed", "failed")]
        if len(runs) >= count:
            return runs
        time.sleep(0.1)
    raise AssertionError(f"{function}: fewer than {count} finished runs: {dev.runs(function=function)}")


def test_debounce_runs_once_with_the_last_event(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    for text in ("h", "he", "hel", "hello"):
        dev.send({"name": "test/typing", "data": {"doc": 1, "text": text}})
        time.sleep(0.2)
    [run] = _runs_of(dev, "durable/settle", 1)
    assert run["output"] == {"text": "hello"}
    time.sleep(1.5)
    assert len(dev.runs(function="durable/settle")) == 1


def test_batch_starts_one_run_for_three_events_and_flushes_the_rest_at_its_timeout(
    dev_server: Callable[..., DevServer],
) -> None:
    dev = dev_server(APP, expect_functions=6)
    dev.send([{"name": "test/item", "data": {"n": n}} for n in range(4)])
    runs = _runs_of(dev, "durable/bundle", 2)
    assert sorted(len(r["output"]) for r in runs) == [1, 3]  # type: ignore[arg-type]
    assert sorted(n for r in runs for n in r["output"]) == [0, 1, 2, 3]  # type: ignore[attr-defined]


def test_throttle_spaces_starts_without_dropping_any(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    dev.send([{"name": "test/trickle", "data": {"n": n}} for n in range(3)])
    runs = _runs_of(dev, "durable/trickle", 3)
    assert sorted(r["output"] for r in runs) == [0, 1, 2]  # type: ignore[type-var]
    starts = sorted(int(r["started_at"]) for r in runs)  # type: ignore[call-overload]
    assert starts[2] - starts[0] >= 1500, starts  # one start a second (burst 1)


def test_a_run_past_its_finish_timeout_fails(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    [ev] = dev.send({"name": "test/too-slow"})
    [run] = dev.wait_runs_for(ev, 1, timeout=30)
    assert run["status"] == "failed"
    assert run["error"]["name"] == "FunctionTimeout"


def test_sleep_until_wakes_at_its_time(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    at_ms = int(time.time() * 1000) + 2000
    [ev] = dev.send({"name": "test/alarm", "data": {"at_ms": at_ms}})
    [run] = dev.wait_runs_for(ev, 1, timeout=30)
    assert run["output"] == "rang"
    assert run["ended_at"] >= at_ms


def test_a_lower_priority_run_starts_after_a_higher_one_sent_with_it(dev_server: Callable[..., DevServer]) -> None:
    dev = dev_server(APP, expect_functions=6)
    low, high = dev.send([{"name": "test/prio", "data": {"p": -2}}, {"name": "test/prio", "data": {"p": 0}}])
    [low_run] = dev.wait_runs_for(low, 1, timeout=30)
    [high_run] = dev.wait_runs_for(high, 1, timeout=30)
    assert (low_run["output"], high_run["output"]) == (-2, 0)
    # priority -2 holds the run's first job back two seconds; priority 0 starts at once
    assert low_run["started_at"] - high_run["started_at"] >= 1500, (low_run, high_run)
