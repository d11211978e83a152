"""Every example in docs/sdk.md runs and does what the page says."""

import re
import subprocess
from pathlib import Path

import pytest

from .harness import ENV, PYTHON, REPO, call, drive, run_shim, step_id, write_app

DOC = (REPO / "docs" / "sdk.md").read_text()


def block(name: str) -> str:
    match = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)```", DOC, re.S)
    assert match, f"docs/sdk.md has no example {name!r}"
    return match.group(1)


@pytest.mark.parametrize(("name", "app_id"), [("signup", "accounts"), ("loop", "reports"),
                                              ("payments", "payments")])
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
    assert run.final == {"op": "done", "data": {"pages": 3, "total": 99}}
    assert "INFO summed 3 pages" in run.stderr[-1]


def test_the_payments_example_recovers_from_a_step_that_failed_for_good(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, block("payments"))
    expired = drive(app_dir, "charge-order", {"name": "shop/order.created",
                                              "data": {"id": 1, "card": "expired", "total": 5}}, retries=2)
    assert [op["op"] for op in expired.ops] == ["step_error", "step", "done"]
    assert expired.final["data"] == {"cancelled": 1, "reason": "card expired"}
    busy = run_shim(app_dir, call("charge-order", {"name": "shop/order.created",
                                                   "data": {"id": 2, "card": "busy", "total": 5}})).op
    assert (busy["op"], busy["retriable"], busy["retry_after_ms"]) == ("step_error", True, 30_000)
    paid = drive(app_dir, "charge-order", {"name": "x", "data": {"id": 3, "card": "ok", "total": 5}})
    assert paid.final["data"] == {"paid": {"charged": 5}}
