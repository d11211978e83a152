"""Parallel steps: plan the missing branches, run each in a targeted call, assemble in order."""

from pathlib import Path

from .harness import call, run_shim, step_id, write_app
from .host import Host

APP = """
    import sluice

    app = sluice.App("a")

    def fetch(page):
        print(f"ran page {page}")
        if page == 99:
            raise sluice.NonRetriableError("no such page")
        return {"page": page}

    @app.function(id="pages")
    def pages(ctx):
        first = ctx.step.run("first", lambda: "f")
        got = ctx.step.parallel(*[("page", fetch, p) for p in ctx.event.data["pages"]], ("total", lambda: 3))
        after = ctx.step.run("after", lambda: "a")
        return {"first": first, "got": got, "after": after}

    @app.function(id="recover")
    def recover(ctx):
        try:
            return ctx.step.parallel(("ok", fetch, 1), ("bad", fetch, 99))
        except sluice.StepError as exc:
            return {"failed": exc.step, "message": exc.message}

    @app.function(id="misuse")
    def misuse(ctx):
        return ctx.step.parallel(("ok", fetch, 1), "oops")
"""
EVENT = {"name": "x", "data": {"pages": [1, 2]}}
PAGE, PAGE1, TOTAL = step_id("page"), step_id("page", 1), step_id("total")


def test_missing_branches_are_planned_without_running_any(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    result = run_shim(app_dir, call("pages", EVENT, {step_id("first"): {"data": "f"}}))
    assert result.ops == [{"op": "planned", "id": PAGE, "name": "page"},
                          {"op": "planned", "id": PAGE1, "name": "page"},
                          {"op": "planned", "id": TOTAL, "name": "total"}]
    assert "ran page" not in result.stderr


def test_a_targeted_call_runs_only_its_branch(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    result = run_shim(app_dir, call("pages", EVENT, {step_id("first"): {"data": "f"}}, target=PAGE1))
    assert result.ops == [{"op": "step", "id": PAGE1, "name": "page", "data": {"page": 2}}]
    assert "ran page 2" in result.stderr and "ran page 1" not in result.stderr


def test_a_targeted_call_that_cannot_reach_its_target_answers_with_no_ops(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    # The target is memoized already (a duplicate call): nothing else may run, not even "after".
    steps = {step_id("first"): {"data": "f"}, PAGE: {"data": 1}, PAGE1: {"data": 2}, TOTAL: {"data": 3}}
    result = run_shim(app_dir, call("pages", EVENT, steps, target=PAGE))
    assert (result.code, result.ops) == (0, [])
    # A target the function never reaches: the new step on the way is not run either.
    result = run_shim(app_dir, call("pages", EVENT, {}, target=PAGE))
    assert result.ops == []


def test_a_host_drives_parallel_branches_to_results_in_order(tmp_path: Path) -> None:
    host = Host(write_app(tmp_path, APP), "pages", {"name": "x", "data": {"pages": [1, 2, 5]}})
    assert host.drive() == {"op": "done", "data": {
        "first": "f", "got": [{"page": 1}, {"page": 2}, {"page": 5}, 3], "after": "a"}}
    assert [(target is not None, [op["op"] for op in ops]) for target, ops in host.calls] == [
        (False, ["step"]), (False, ["planned"] * 4), (True, ["step"]), (True, ["step"]), (True, ["step"]),
        (True, ["step"]), (False, ["step", "done"])]  # "after" runs, then the function returns


def test_one_missing_branch_runs_at_once(tmp_path: Path) -> None:
    steps = {step_id("first"): {"data": "f"}, PAGE: {"data": {"page": 1}}, TOTAL: {"data": 3}}
    op = run_shim(write_app(tmp_path, APP), call("pages", EVENT, steps)).op
    assert op == {"op": "step", "id": PAGE1, "name": "page", "data": {"page": 2}}


def test_a_branch_that_failed_for_good_raises_its_step_error(tmp_path: Path) -> None:
    host = Host(write_app(tmp_path, APP), "recover", {"name": "x", "data": {}})
    assert host.drive() == {"op": "done", "data": {"failed": "bad", "message": "no such page"}}
    assert host.steps[step_id("ok")] == {"data": {"page": 1}}


def test_a_malformed_branch_is_named(tmp_path: Path) -> None:
    op = run_shim(write_app(tmp_path, APP), call("misuse")).op
    assert op["op"] == "error" and op["error"]["name"] == "TypeError"
    assert op["error"]["message"] == "parallel branch 1: use a tuple (name, fn, *args), got 'oops'"


def test_a_request_with_a_malformed_target_or_clock_is_refused_before_user_code(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    for field, value, message in [("target", 5, "target must be a step id"), ("target", "", "target must be"),
                                  ("now_ms", -1, "now_ms must be a non-negative integer"),
                                  ("now_ms", "soon", "now_ms must be"), ("now_ms", True, "now_ms must be")]:
        result = run_shim(app_dir, call("pages", EVENT) | {field: value})
        assert (result.code, result.stdout) == (2, b""), (field, value)
        assert message in result.stderr and "ran page" not in result.stderr
