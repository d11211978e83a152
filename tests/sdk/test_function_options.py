"""Cron triggers, flow control and the other function options: checked at decoration,
introspected with fixed keys (durations in ms), bad ones named."""

from pathlib import Path

import pytest

import sluice

from .harness import call, run_shim, write_app


def test_every_option_is_introspected_in_its_normal_form() -> None:
    app = sluice.App("shop")
    app.function(
        id="f", trigger=[sluice.cron("0  9 * * mon-fri", tz="Europe/Paris"), "shop/order"], retries=5,
        timeout="1h", start_timeout="10m", backoff={"base": "2s", "max": "5m"},
        concurrency={"limit": 5, "key": "event.data.customer"},
        throttle={"limit": 10, "period": "1m", "key": "event.data.customer"},
        rate_limit={"limit": 1, "period": "1h"}, debounce={"period": "5s", "timeout": "1m"},
        batch={"max_size": 50, "timeout": "5s", "key": "event.data.shop"}, priority="event.data.vip ? 60 : 0",
        idempotency="event.data.order_id",
        cancel_on=[sluice.event("shop/order.cancelled", if_="async.data.id == event.data.id"),
                   {"event": "shop/closed", "timeout": "1d"}],
        allow_hosts=["api.Stripe.com", "*.example.com:8443"], checkpoint=True)(lambda ctx: None)
    (described,) = app.introspect()["functions"]
    assert described == {
        "id": "f", "name": "f", "retries": 5, "timeout_ms": 3_600_000,
        "triggers": [{"cron": "0 9 * * mon-fri", "tz": "Europe/Paris"}, {"event": "shop/order", "if": None}],
        "start_timeout_ms": 600_000, "backoff": {"base_ms": 2_000, "max_ms": 300_000},
        "concurrency": {"limit": 5, "key": "event.data.customer"},
        "throttle": {"limit": 10, "period_ms": 60_000, "key": "event.data.customer", "burst": 1},
        "rate_limit": {"limit": 1, "period_ms": 3_600_000, "key": None},
        "debounce": {"period_ms": 5_000, "key": None, "timeout_ms": 60_000},
        "batch": {"max_size": 50, "timeout_ms": 5_000, "key": "event.data.shop"},
        "priority": "event.data.vip ? 60 : 0", "idempotency": "event.data.order_id",
        "cancel_on": [{"event": "shop/order.cancelled", "if": "async.data.id == event.data.id", "timeout_ms": None},
                      {"event": "shop/closed", "if": None, "timeout_ms": 86_400_000}],
        "allow_hosts": ["api.stripe.com", "*.example.com:8443"],
        "checkpoint": {"max_steps": 100, "max_ms": 1_000}}


def test_short_forms_expand_and_unset_options_are_left_out() -> None:
    app = sluice.App("shop")
    app.function(id="f", concurrency=3, cancel_on=sluice.event("x"), checkpoint={"max_steps": 5},
                 backoff={})(lambda ctx: None)
    app.function(id="g", checkpoint=False)(lambda ctx: None)
    f, g = app.introspect()["functions"]
    assert f["concurrency"] == {"limit": 3, "key": None}
    assert f["cancel_on"] == [{"event": "x", "if": None, "timeout_ms": None}]
    assert f["checkpoint"] == {"max_steps": 5, "max_ms": 1_000}
    assert f["backoff"] == {"base_ms": 1_000, "max_ms": 600_000}
    assert g == {"id": "g", "name": "g", "triggers": [], "retries": 3, "timeout_ms": None}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"concurrency": 0}, "bad concurrency 0: limit must be an integer 1-100000"),
    ({"concurrency": {"limt": 2}}, "bad concurrency {'limt': 2}: unknown key 'limt' (known: limit, key)"),
    ({"concurrency": {"limit": 2, "key": ""}}, "bad concurrency"),
    ({"throttle": {"limit": 1}}, "bad throttle {'limit': 1}: 'period' is required"),
    ({"throttle": {"limit": 1, "period": "1 minute"}}, "bad throttle: bad period '1 minute'"),
    ({"throttle": {"limit": 1, "period": 0}}, "period must be more than 0"),
    ({"rate_limit": 5}, "bad rate_limit 5: use a dict with keys limit, period, key"),
    ({"debounce": {"key": "x"}}, "bad debounce {'key': 'x'}: 'period' is required"),
    ({"batch": {"max_size": 5000, "timeout": "1s"}}, "bad batch"),
    ({"priority": ""}, "bad priority ''"),
    ({"idempotency": 5}, "bad idempotency 5"),
    ({"cancel_on": [{"if": "x"}]}, "bad cancel_on [{'if': 'x'}]: 'event' is required"),
    ({"cancel_on": []}, "bad cancel_on []"),
    ({"start_timeout": "never"}, "bad start_timeout"),
    ({"backoff": {"base": "1m", "max": "1s"}}, "'max' must be at least 'base'"),
    ({"allow_hosts": "api.example.com"}, "bad allow_hosts 'api.example.com': use a list"),
    ({"allow_hosts": ["http://api.example.com"]}, "'http://api.example.com' is not a host name"),
    ({"allow_hosts": ["api.*.com"]}, "'*' is allowed only as a '*.' prefix"),
    ({"checkpoint": {"max_steps": 0}}, "bad checkpoint"),
    ({"checkpoint": "yes"}, "bad checkpoint 'yes'"),
    ({"on_failure": "handler"}, "bad on_failure 'handler'"),
    ({"trigger": {"cron": "* * *"}}, "bad trigger {'cron': '* * *'}: bad cron schedule"),
])
def test_bad_options_raise_a_value_error_naming_them(kwargs: dict[str, object], message: str) -> None:
    app = sluice.App("shop")
    with pytest.raises(ValueError) as info:
        app.function(id="f", **kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith("function 'f': ") and message in str(info.value)


@pytest.mark.parametrize("schedule", ["* * * * *", "*/15 9-17 * * 1-5", "0 0 1 jan,jul ?", "0 12 1-31/2 * SUN",
                                      "@daily", "@Hourly", " 0 9 * * 7 "])
def test_cron_accepts_standard_five_field_schedules_and_macros(schedule: str) -> None:
    assert sluice.cron(schedule)["cron"] == " ".join(schedule.split())


@pytest.mark.parametrize(("schedule", "problem"), [
    ("* * * *", "it has 4 fields; cron needs 5"),
    ("* * * * * *", "it has 6 fields"),
    ("60 * * * *", "minute field '60': 60 is out of range 0-59"),
    ("* 24 * * *", "hour field '24'"),
    ("* * 0 * *", "day of month field '0': 0 is out of range 1-31"),
    ("* * * 13 *", "month field '13'"),
    ("* * * * 8", "day of week field '8'"),
    ("* * * * mon-xyz", "'xyz' is not a number or a name"),
    ("*/0 * * * *", "bad step '0'"),
    ("5-1 * * * *", "range '5-1' runs backwards"),
    ("? * * * *", "'?' is only allowed in day fields"),
    ("@sometimes", "unknown macro"),
    ("", "use a string like"),
])
def test_cron_names_what_is_wrong_with_a_schedule(schedule: str, problem: str) -> None:
    with pytest.raises(ValueError, match="bad cron schedule") as info:
        sluice.cron(schedule)
    assert problem in str(info.value)


def test_cron_checks_the_time_zone_name() -> None:
    assert sluice.cron("0 9 * * *", tz="America/Argentina/Buenos_Aires")["tz"] == "America/Argentina/Buenos_Aires"
    with pytest.raises(ValueError, match="bad cron tz 'Paris time'"):
        sluice.cron("0 9 * * *", tz="Paris time")


ON_FAILURE = """
    import sluice

    app = sluice.App("shop")

    def cleanup(ctx):
        return {"cleaned": ctx.event.data.function_id, "error": ctx.event.data.error["message"]}

    @app.function(id="charge", trigger="shop/order", retries=2, timeout="5m", on_failure=cleanup)
    def charge(ctx):
        raise sluice.NonRetriableError("declined")
"""


def test_on_failure_registers_a_handler_triggered_by_the_failed_event(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, ON_FAILURE)
    charge, failure = run_shim(app_dir, {"v": 1, "kind": "introspect"}).response["functions"]
    assert charge["on_failure"] == "charge-failure"
    assert failure == {"id": "charge-failure", "name": "charge (on failure)", "retries": 2, "timeout_ms": 300_000,
                       "triggers": [{"event": "sluice/function.failed",
                                     "if": "event.data.function_id == 'shop/charge'"}],
                       "failure_of": "charge"}
    failed = {"name": "sluice/function.failed", "data": {
        "function_id": "shop/charge", "run_id": "r1", "error": {"name": "NonRetriableError", "message": "declined"},
        "event": {"name": "shop/order", "data": {}}}}
    op = run_shim(app_dir, call("charge-failure", failed)).op
    assert op == {"op": "done", "data": {"cleaned": "shop/charge", "error": "declined"}}


def test_on_failure_needs_its_id_free() -> None:
    app = sluice.App("shop")
    app.function(id="charge-failure")(lambda ctx: None)
    with pytest.raises(ValueError, match="on_failure needs the id 'charge-failure', which is already used"):
        app.function(id="charge", on_failure=lambda ctx: None)
    with pytest.raises(ValueError, match="bad on_failure function id"):
        app.function(id="x" * 121, on_failure=lambda ctx: None)
