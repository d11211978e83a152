"""Cron triggers: next fire times in a time zone, deterministic tick events, and ticks
that start exactly the function they were armed for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runtime.cron import TIMER_EVENT, check_cron, next_fire_ms, tick_event
from runtime.limits import RuntimeLimits
from runtime.registry import AppSource, Registry, RegistryError
from sandboxes import Target

SRC = AppSource(Target(kind="module", ref="x.wat"), "wasm")


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_the_next_fire_time_follows_the_expression_in_its_time_zone() -> None:
    # Monday 2026-11-30 09:00 in Paris is 08:00 UTC (winter time).
    assert next_fire_ms("0 9 * * 1", "Europe/Paris", ms(2026, 11, 27, 12, 0)) == ms(2026, 11, 30, 8, 0)
    assert next_fire_ms("*/15 * * * *", None, ms(2026, 1, 1, 0, 7)) == ms(2026, 1, 1, 0, 15)
    assert next_fire_ms("*/15 * * * *", None, ms(2026, 1, 1, 0, 15)) == ms(2026, 1, 1, 0, 30)  # strictly after


def test_bad_schedules_are_named() -> None:
    with pytest.raises(ValueError, match="invalid cron expression"):
        check_cron("61 * * * *", None)
    with pytest.raises(ValueError, match="unknown time zone"):
        check_cron("* * * * *", "Mars/Olympus")


def test_a_tick_event_is_the_same_for_every_node_that_arms_it() -> None:
    trig = {"cron": "0 9 * * 1", "tz": "Europe/Paris"}
    a, b = tick_event("shop/report", trig, 123), tick_event("shop/report", trig, 123)
    assert a == b and a["name"] == TIMER_EVENT and " " not in a["id"]
    assert tick_event("shop/report", trig, 124)["id"] != a["id"]


def test_a_tick_starts_only_its_own_function_and_a_bad_cron_is_refused_at_registration() -> None:
    reg = Registry({}, RuntimeLimits())
    report = reg._function("shop", {"id": "report", "triggers": [{"cron": "0 9 * * 1", "tz": None}]}, SRC)
    other = reg._function("shop", {"id": "other", "triggers": [{"event": TIMER_EVENT, "if": None}]}, SRC)
    reg.replace_app("shop", [report, other])
    tick = tick_event("shop/report", report.crons[0], 1)
    assert [f.fqid for f in reg.match(tick)] == ["shop/report"]
    stale = tick_event("shop/report", {"cron": "5 5 * * *", "tz": None}, 1)
    assert reg.match(stale) == []  # a schedule the function no longer has starts nothing
    with pytest.raises(RegistryError, match="invalid cron"):
        reg._function("shop", {"id": "bad", "triggers": [{"cron": "every day", "tz": None}]}, SRC)
