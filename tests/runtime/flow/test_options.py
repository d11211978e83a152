"""Flow options: bad values are refused with a message naming the function and option;
priority is a clamped integer."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.flow import FlowOptionError
from runtime.flow.options import parse
from runtime.flow.priority import priority_of
from tests.runtime.flow.conftest import event, function


@pytest.mark.parametrize(("raw", "message"), [
    ({"concurrency": {"limit": 0}}, "concurrency.limit must be an integer 1-100000, got 0"),
    ({"concurrency": 5}, "concurrency must be a map"),
    ({"throttle": {"limit": 2}}, "throttle.period_ms is required"),
    ({"throttle": {"limit": 2, "period_ms": 1000, "burst": True}}, "throttle.burst must be an integer"),
    ({"rate_limit": {"limit": 2, "period_ms": -5}}, "rate_limit.period_ms (ms) must be an integer"),
    ({"debounce": {"period_ms": 100, "key": "event.data.("}}, "debounce.key: invalid expression"),
    ({"batch": {"max_size": 5000, "timeout_ms": 100}}, "batch.max_size must be an integer 1-1000"),
    ({"priority": 7}, "priority must be a CEL expression string"),
    ({"debounce": {"period_ms": 100}, "batch": {"max_size": 2, "timeout_ms": 100}}, "cannot be used together"),
])
def test_a_bad_option_is_refused_naming_the_function_and_the_option(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(FlowOptionError) as info:
        parse(function(**raw))
    assert "function 'shop/f'" in str(info.value)
    assert message in str(info.value)


def test_the_sdks_introspected_shapes_parse() -> None:
    opts = parse(function(
        concurrency={"limit": 2, "key": "event.data.user"},
        throttle={"limit": 10, "period_ms": 60_000, "key": None, "burst": 1},
        rate_limit={"limit": 1, "period_ms": 1000, "key": "event.data.user"},
        debounce={"period_ms": 500, "key": None, "timeout_ms": None},
        priority="event.data.vip ? 100 : 0",
    ))
    assert opts.concurrency is not None and opts.concurrency.limit == 2
    assert opts.throttle is not None and opts.throttle.burst == 1
    assert opts.debounce is not None and opts.debounce.timeout_ms is None
    assert opts.batch is None


@pytest.mark.parametrize(("expr", "data", "want"), [
    (None, {}, 0),
    ("event.data.p", {"p": 42}, 42),
    ("event.data.p", {"p": -9000}, -600),
    ("event.data.p", {"p": 9000}, 600),
    ("event.data.p", {"p": 2.9}, 2),
    ("event.data.p", {"p": "high"}, 0),
    ("event.data.p", {"p": True}, 0),
    ("event.data.missing", {}, 0),
    ("event.data.vip ? 100 : 0", {"vip": True}, 100),
])
def test_priority_is_an_integer_clamped_to_ten_minutes_either_way(expr: str | None, data: dict[str, object],
                                                                  want: int) -> None:
    assert priority_of(expr, event(1, **data)) == want
