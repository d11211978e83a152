"""Options are checked when the decorator runs, with messages naming the problem."""

import pytest

import sluice


def test_the_public_surface_is_small_and_explicit() -> None:
    assert sorted(sluice.__all__) == sorted([
        "App", "Context", "FetchResponse", "Function", "Logger", "NonRetriableError", "RetryAfterError", "Step",
        "StepError", "cron", "event", "parse_duration"])


@pytest.mark.parametrize("bad", ["", "Shop", "-shop", "_x", "sh op", "shop!", "x" * 129, 7, None])
def test_a_bad_app_id_raises_a_value_error_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="bad app id"):
        sluice.App(bad)  # type: ignore[arg-type]


def test_good_ids_use_lowercase_digits_dash_and_underscore() -> None:
    app = sluice.App("shop_2-eu")
    app.function(id="0-send_mail")(lambda ctx: None)
    assert list(app.functions) == ["0-send_mail"]


def test_a_function_id_may_be_used_once_per_app() -> None:
    app = sluice.App("shop")
    app.function(id="a")(lambda ctx: None)
    with pytest.raises(ValueError, match="'a' is already used in app 'shop'"):
        app.function(id="a")(lambda ctx: None)
    with pytest.raises(ValueError, match="bad function id 'A'"):
        app.function(id="A")


def test_triggers_are_normalised_to_event_maps() -> None:
    app = sluice.App("shop")
    app.function(id="f", trigger=[sluice.event("a/b", if_="event.data.x > 1"), "c/d"])(lambda ctx: None)
    app.function(id="g")(lambda ctx: None)
    fns = app.introspect()["functions"]
    assert fns[0]["triggers"] == [{"event": "a/b", "if": "event.data.x > 1"}, {"event": "c/d", "if": None}]
    assert fns[1]["triggers"] == []
    assert sluice.event("x", if_="") == {"event": "x", "if": None}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"trigger": 5}, "bad trigger 5"),
    ({"trigger": {"name": "x"}}, "bad trigger"),
    ({"trigger": sluice.event("ok") | {"if": 3}}, "bad if_"),
    ({"trigger": "x" * 257}, "bad event name"),
    ({"retries": -1}, "bad retries -1"),
    ({"retries": 21}, "bad retries 21"),
    ({"retries": True}, "bad retries True"),
    ({"timeout": "10 minutes"}, "bad timeout of function 'f' '10 minutes'"),
    ({"timeout": 0}, "timeout must be more than 0"),
    ({"name": ""}, "bad name ''"),
])
def test_bad_function_options_raise_a_value_error_naming_them(
        kwargs: dict[str, object], message: str) -> None:
    app = sluice.App("shop")
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        app.function(id="f", **kwargs)  # type: ignore[arg-type]


def test_introspection_reports_defaults_and_parsed_timeouts() -> None:
    app = sluice.App("shop")
    app.function(id="a", trigger=sluice.event("x"))(lambda ctx: None)
    app.function(id="b", trigger=sluice.event("x"), retries=0, timeout="1h30m", name="Bee")(lambda ctx: None)
    assert app.introspect() == {"v": 1, "app": "shop", "functions": [
        {"id": "a", "name": "a", "triggers": [{"event": "x", "if": None}], "retries": 3, "timeout_ms": None},
        {"id": "b", "name": "Bee", "triggers": [{"event": "x", "if": None}], "retries": 0,
         "timeout_ms": 5_400_000},
    ]}


def test_async_functions_are_refused_at_registration() -> None:
    app = sluice.App("shop")

    async def f(ctx: sluice.Context) -> None:
        return None

    with pytest.raises(TypeError, match="async functions are not supported"):
        app.function(id="f")(f)


def test_the_decorator_returns_the_function_unchanged() -> None:
    app = sluice.App("shop")

    def f(ctx: sluice.Context) -> int:
        return 1

    assert app.function(id="f")(f) is f
    assert app.functions["f"].fn is f


def test_retry_after_accepts_seconds_or_durations_and_rejects_junk() -> None:
    assert sluice.RetryAfterError("later", 2).retry_after_ms == 2000
    assert sluice.RetryAfterError("later", "1m").retry_after_ms == 60_000
    with pytest.raises(ValueError, match="bad retry_after 'soon'"):
        sluice.RetryAfterError("later", "soon")


def test_reuse_instances_is_an_explicit_boolean_the_host_sees_in_introspection() -> None:
    assert "reuse_instances" not in sluice.App("shop").introspect()
    assert sluice.App("shop", reuse_instances=True).introspect()["reuse_instances"] is True
    with pytest.raises(ValueError, match="bad reuse_instances 'yes' for app 'shop'"):
        sluice.App("shop", reuse_instances="yes")  # type: ignore[arg-type]


def test_the_host_refuses_an_introspection_with_a_non_boolean_reuse_instances() -> None:
    from sluice.protocol import ProtocolError, decode_introspection, pack

    good = {"v": 1, "app": "shop", "functions": [], "reuse_instances": True}
    assert decode_introspection(pack(good))["reuse_instances"] is True
    with pytest.raises(ProtocolError, match="'reuse_instances' must be a boolean"):
        decode_introspection(pack({**good, "reuse_instances": 1}))
