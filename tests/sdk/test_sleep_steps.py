"""sleep and sleep_until: one `sleep` op with an absolute deadline taken from the request's clock."""

import datetime
import time
from pathlib import Path

import pytest

from sluice._when import epoch_ms

from .harness import call, run_shim, step_id, write_app
from .host import START_MS, Host

APP = """
    import datetime
    import sluice

    app = sluice.App("a")

    @app.function(id="nap")
    def nap(ctx):
        before = ctx.step.run("before", lambda: "b")
        slept = ctx.step.sleep("cool-off", ctx.event.data.get("for", "1h30m"))
        return {"before": before, "slept": slept}

    @app.function(id="until")
    def until(ctx):
        when = ctx.event.data["when"]
        if when == "aware":
            when = datetime.datetime(2026, 3, 1, 10, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
        elif when == "naive":
            when = datetime.datetime(2026, 3, 1, 9, 0)
        elif when == "date":
            when = datetime.date(2026, 3, 1)
        ctx.step.sleep_until("wake", when)
        return "awake"
"""
MARCH_1_9H_UTC = 1_772_355_600_000


def test_sleep_reports_until_ms_from_the_requests_clock_and_returns_none_once_memoized(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    steps = {step_id("before"): {"data": "b"}}
    op = run_shim(app_dir, call("nap", steps=steps, now_ms=START_MS)).op
    assert op == {"op": "sleep", "id": step_id("cool-off"), "name": "cool-off", "until_ms": START_MS + 5_400_000}
    # The same request gives the same deadline: nothing depends on the sandbox's own clock.
    assert run_shim(app_dir, call("nap", steps=steps, now_ms=START_MS)).op == op
    done = run_shim(app_dir, call("nap", steps={**steps, op["id"]: {"data": None}}, now_ms=START_MS + 1)).op
    assert done == {"op": "done", "data": {"before": "b", "slept": None}}


def test_without_now_ms_the_sleep_counts_from_the_sandboxs_clock(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    before = int(time.time() * 1000)
    op = run_shim(app_dir, call("nap", {"name": "x", "data": {"for": 10}}, {step_id("before"): {"data": "b"}})).op
    assert before + 10_000 <= op["until_ms"] <= int(time.time() * 1000) + 10_000


def test_a_host_drives_a_sleeping_function_to_the_end(tmp_path: Path) -> None:
    host = Host(write_app(tmp_path, APP), "nap", {"name": "x", "data": {"for": "1d"}})
    assert host.drive() == {"op": "done", "data": {"before": "b", "slept": None}}
    assert host.now_ms == START_MS + 86_400_000
    assert [ops[0]["op"] for _, ops in host.calls] == ["step", "sleep", "done"]


@pytest.mark.parametrize("when", [
    MARCH_1_9H_UTC, float(MARCH_1_9H_UTC), "2026-03-01T09:00:00Z", "2026-03-01T10:00:00+01:00",
    "2026-03-01T09:00:00", "2026-03-01 09:00:00.000", "aware", "naive"])
def test_sleep_until_accepts_datetimes_iso_strings_and_epoch_ms(tmp_path: Path, when: object) -> None:
    app_dir = write_app(tmp_path, APP)
    op = run_shim(app_dir, call("until", {"name": "x", "data": {"when": when}})).op
    assert op == {"op": "sleep", "id": step_id("wake"), "name": "wake", "until_ms": MARCH_1_9H_UTC}


def test_sleep_until_a_date_means_its_midnight_utc(tmp_path: Path) -> None:
    op = run_shim(write_app(tmp_path, APP), call("until", {"name": "x", "data": {"when": "date"}})).op
    assert op["until_ms"] == MARCH_1_9H_UTC - 9 * 3_600_000


@pytest.mark.parametrize("when", ["tomorrow", "2026-13-01", -1, True, None, [2026]])
def test_sleep_until_refuses_what_is_not_a_time_naming_it(tmp_path: Path, when: object) -> None:
    op = run_shim(write_app(tmp_path, APP), call("until", {"name": "x", "data": {"when": when}})).op
    assert op["op"] == "error" and op["error"]["name"] == "ValueError"
    assert op["error"]["message"].startswith(f"bad time of sleep_until 'wake' {when!r}")


def test_a_bad_sleep_duration_is_named(tmp_path: Path) -> None:
    steps = {step_id("before"): {"data": "b"}}
    op = run_shim(write_app(tmp_path, APP), call("nap", {"name": "x", "data": {"for": "soon"}}, steps)).op
    assert op["op"] == "error" and "bad duration of sleep 'cool-off' 'soon'" in op["error"]["message"]


def test_epoch_ms_is_exact_to_the_millisecond() -> None:
    dt = datetime.datetime(2026, 3, 1, 9, 0, 0, 123_999, tzinfo=datetime.UTC)
    assert epoch_ms(dt) == MARCH_1_9H_UTC + 123
    assert epoch_ms("1970-01-01T00:00:00.001Z") == 1
    with pytest.raises(ValueError, match="bad time"):
        epoch_ms("1969-12-31T23:59:59Z")
