"""Every example in docs/sdk.md runs and does what the page says."""

import re
import subprocess
from pathlib import Path

import pytest

from .harness import ENV, PYTHON, REPO, call, drive, run_shim, step_id, write_app
from .host import START_MS, Host

DOC = (REPO / "docs" / "sdk.md").read_text()


def block(name: str) -> str:
    match = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)```", DOC, re.S)
    assert match, f"docs/sdk.md has no example {name!r}"
    return match.group(1)


@pytest.mark.parametrize(("name", "app_id"), [
    ("signup", "accounts"), ("loop", "reports"), ("payments", "payments"), ("reminder", "reminders"),
    ("onboard", "shop"), ("invoke", "pricing"), ("fetch", "weather"), ("parallel", "catalog"),
    ("checkpoint", "etl"), ("cron", "digest"), ("flow", "notify"), ("on-failure", "payouts")])
def test_each_documented_app_loads_and_introspects(tmp_path: Path, name: str, app_id: str) -> None:
    result = run_shim(write_app(tmp_path, block(name)), {"v": 1, "kind": "introspect"})
    assert result.code == 0, result.stderr
    assert result.response["app"] == app_id


def test_the_documented_driver_prints_the_documented_output(tmp_path: Path) -> None:
    write_app(tmp_path / "accounts", block("signup"))
    (tmp_path / "drive.py").write_text(block("drive"))
    proc = subprocess.run([PYTHON, "drive.py", "accounts", "onboard",
                           '{"name": "user/signup", "data": {"id": 42, "plan": "pro"}}'],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout == block("drive-output")


def test_the_loop_example_repeats_one_step_name(tmp_path: Path) -> None:
    run = drive(write_app(tmp_path, block("loop")), "nightly-report", {"name": "reports/nightly", "data": {}})
    assert [op["id"] for op in run.ops[:3]] == [step_id("fetch-page", n) for n in range(3)]
    assert [[op["op"] for op in ops] for ops in run.calls] == [["step"], ["step"], ["step", "done"]]
    assert run.final == {"op": "done", "data": {"pages": 3, "total": 99}}
    assert "INFO summed 3 pages" in run.stderr[-1]


def test_the_payments_example_recovers_from_a_step_that_failed_for_good(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, block("payments"))
    expired = drive(app_dir, "charge-order", {"name": "shop/order.created",
                                              "data": {"id": 1, "card": "expired", "total": 5}}, retries=2)
    # The failed charge ends its call; the next call runs cancel-order and returns in the same call.
    assert [[op["op"] for op in ops] for ops in expired.calls] == [["step_error"], ["step", "done"]]
    assert expired.final["data"] == {"cancelled": 1, "reason": "card expired"}
    busy = run_shim(app_dir, call("charge-order", {"name": "shop/order.created",
                                                   "data": {"id": 2, "card": "busy", "total": 5}})).op
    assert (busy["op"], busy["retriable"], busy["retry_after_ms"]) == ("step_error", True, 30_000)
    paid = drive(app_dir, "charge-order", {"name": "x", "data": {"id": 3, "card": "ok", "total": 5}})
    assert paid.final["data"] == {"paid": {"charged": 5}}


def test_the_reminder_example_sleeps_a_week_then_until_the_trial_ends(tmp_path: Path) -> None:
    event = {"name": "billing/trial.started", "data": {"email": "a@b.c", "ends_at": "2026-02-01T00:00:00Z"}}
    host = Host(write_app(tmp_path, block("reminder")), "trial-reminder", event)
    assert host.drive() == {"op": "done", "data": {"sent": "a@b.c", "last": True}}
    sleeps = [ops[0]["until_ms"] for _, ops in host.calls if ops[0]["op"] == "sleep"]
    assert sleeps == [START_MS + 7 * 86_400_000, START_MS + 31 * 86_400_000]


def test_the_onboard_example_nudges_when_no_confirmation_comes(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, block("onboard"))
    event = {"name": "user/signup", "data": {"id": 42, "plan": "pro"}}
    host = Host(app_dir, "onboard", event)
    assert host.drive() == {"op": "done", "data": {"account": {"id": 42}, "nudged": ["evt-0"]}}
    assert host.sent == [{"name": "user/nudge", "data": {"id": 42}}]
    confirmed = Host(app_dir, "onboard", event, arrivals={"user/confirmed": {"name": "user/confirmed", "ts": 9}})
    assert confirmed.drive()["data"] == {"account": {"id": 42}, "confirmed_at": 9}


def test_the_invoke_example_gets_the_quote_or_its_failure(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, block("invoke"))
    items = [{"price": 2, "qty": 3}]
    quote = Host(app_dir, "quote", {"name": "sluice/function.invoked", "data": {"items": items}}).drive()
    host = Host(app_dir, "checkout", {"name": "shop/cart.submitted", "data": {"items": items}},
                invoked={"pricing/quote": {"data": quote["data"]}})
    assert host.drive() == {"op": "done", "data": {"charge": 6}}
    failed = Host(app_dir, "checkout", {"name": "x", "data": {"items": items}},
                  invoked={"pricing/quote": {"error": {"name": "InvokeTimeout", "message": "too slow"}}})
    assert failed.drive() == {"op": "done", "data": {"failed": "too slow"}}


def test_the_fetch_example_reads_json_and_fails_on_an_http_error(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, block("fetch"))
    url = "https://api.weather.example/v1/forecast?city=Lyon"
    event = {"name": "weather/check", "data": {"city": "Lyon"}}
    ok = Host(app_dir, "forecast", event, responses={url: {"data": {"status": 200, "headers": {},
                                                                    "body": b'{"rain": 0.2}'}}})
    assert ok.drive() == {"op": "done", "data": {"city": "Lyon", "rain": 0.2}}
    assert ok.calls[0][1][0]["request"]["headers"] == {"accept": "application/json"}
    down = Host(app_dir, "forecast", event, responses={url: {"data": {"status": 503, "headers": {}, "body": b"x"}}})
    final = down.drive()
    assert final["op"] == "error" and final["error"]["message"] == "forecast failed with HTTP 503: x"


def test_the_parallel_example_plans_four_branches(tmp_path: Path) -> None:
    host = Host(write_app(tmp_path, block("parallel")), "reindex", {"name": "catalog/reindex", "data": {}})
    assert host.drive() == {"op": "done", "data": {"pages": 4, "items": 12}}
    assert [op["op"] for op in host.calls[0][1]] == ["planned"] * 4


def test_the_checkpoint_example_needs_two_calls(tmp_path: Path) -> None:
    host = Host(write_app(tmp_path, block("checkpoint")), "transform", {"name": "etl/batch.ready", "data": {}})
    assert host.drive() == {"op": "done", "data": {"sum": 20, "n": 5}}
    assert [[op["op"] for op in ops] for _, ops in host.calls] == [["step", "step", "step", "sleep"],
                                                                   ["step", "done"]]


def test_the_on_failure_example_registers_its_handler(tmp_path: Path) -> None:
    result = run_shim(write_app(tmp_path, block("on-failure")), {"v": 1, "kind": "introspect"})
    payout, handler = result.response["functions"]
    assert payout["backoff"] == {"base_ms": 10_000, "max_ms": 3_600_000}
    assert handler["id"] == "payout-failure"
    assert handler["triggers"] == [{"event": "sluice/function.failed",
                                    "if": "event.data.function_id == 'payouts/payout'"}]
