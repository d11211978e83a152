"""wait_for_event and send_event: their ops, and what the function gets back once memoized."""

from pathlib import Path

from .harness import call, run_shim, step_id, write_app
from .host import Host

APP = """
    import sluice

    app = sluice.App("shop")

    @app.function(id="onboard", trigger=sluice.event("user/signup"))
    def onboard(ctx):
        confirmed = ctx.step.wait_for_event("confirm", event="user/confirmed",
                                            if_="async.data.id == event.data.id", timeout="3d")
        if confirmed is None:
            sent = ctx.step.send_event("nudge", {"name": "user/nudge", "data": {"id": ctx.event.data.id}})
            return {"confirmed": False, "sent": sent.ids}
        return {"confirmed": True, "by": confirmed.data.by, "name": confirmed.name}

    @app.function(id="fan-out")
    def fan_out(ctx):
        return ctx.step.send_event("many", [{"name": "a/b", "data": {"n": n}} for n in range(3)] + [{"name": "c"}])

    @app.function(id="bad-send")
    def bad_send(ctx):
        return ctx.step.send_event("oops", ctx.event.data["events"])

    @app.function(id="bad-wait")
    def bad_wait(ctx):
        return ctx.step.wait_for_event("w", event=ctx.event.data["event"], timeout=ctx.event.data["timeout"])
"""
SIGNUP = {"name": "user/signup", "data": {"id": 7}}


def test_wait_for_event_reports_the_event_its_condition_and_timeout(tmp_path: Path) -> None:
    op = run_shim(write_app(tmp_path, APP), call("onboard", SIGNUP)).op
    assert op == {"op": "wait_for_event", "id": step_id("confirm"), "name": "confirm", "event": "user/confirmed",
                  "if": "async.data.id == event.data.id", "timeout_ms": 3 * 86_400_000}


def test_a_matched_wait_returns_the_event_with_attribute_access(tmp_path: Path) -> None:
    host = Host(write_app(tmp_path, APP), "onboard", SIGNUP,
                arrivals={"user/confirmed": {"name": "user/confirmed", "data": {"id": 7, "by": "email"}}})
    assert host.drive() == {"op": "done", "data": {"confirmed": True, "by": "email", "name": "user/confirmed"}}


def test_a_timed_out_wait_returns_none_and_send_event_returns_the_ids(tmp_path: Path) -> None:
    host = Host(write_app(tmp_path, APP), "onboard", SIGNUP)
    assert host.drive() == {"op": "done", "data": {"confirmed": False, "sent": ["evt-0"]}}
    assert host.calls[1][1] == [{"op": "send_event", "id": step_id("nudge"), "name": "nudge",
                                 "events": [{"name": "user/nudge", "data": {"id": 7}}]}]


def test_send_event_takes_a_list_and_returns_the_memoized_map(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    op = run_shim(app_dir, call("fan-out")).op
    assert op["op"] == "send_event" and len(op["events"]) == 4 and op["events"][3] == {"name": "c"}
    done = run_shim(app_dir, call("fan-out", steps={op["id"]: {"data": {"ids": ["1", "2", "3", "4"]}}})).op
    assert done == {"op": "done", "data": {"ids": ["1", "2", "3", "4"]}}


def test_send_event_names_an_event_without_a_name(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    cases = {"no name": ([{"name": "ok"}, {"data": {}}], "event 1 has no valid 'name'"),
             "empty name": ({"name": ""}, "event 0 has no valid 'name'"),
             "bad data": ([{"name": "x", "data": [1]}], "event 0 ('x'): 'data' must be a dict"),
             "empty list": ([], "use an event dict or a non-empty list"),
             "not events": ("user/x", "use an event dict or a non-empty list")}
    for events, message in cases.values():
        op = run_shim(app_dir, call("bad-send", {"name": "x", "data": {"events": events}})).op
        assert op["op"] == "error" and op["error"]["name"] == "ValueError", op
        assert op["error"]["message"].startswith("send_event 'oops': ") and message in op["error"]["message"]


def test_wait_for_event_names_a_bad_event_or_timeout(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    op = run_shim(app_dir, call("bad-wait", {"name": "x", "data": {"event": "", "timeout": "1h"}})).op
    assert op["error"]["message"] == "wait_for_event 'w': bad event '': use an event name of 1-256 chars"
    op = run_shim(app_dir, call("bad-wait", {"name": "x", "data": {"event": "a", "timeout": "forever"}})).op
    assert "bad timeout of wait_for_event 'w' 'forever'" in op["error"]["message"]
