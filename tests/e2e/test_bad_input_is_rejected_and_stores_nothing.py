"""Bad input over HTTP gets the documented 400/413 answer naming the problem, and
stores nothing: a rejected batch starts no run, not even for its good events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import DevServer, http

APP = Path(__file__).parent / "apps" / "flaky"


@pytest.mark.parametrize(
    ("raw", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (json.dumps([{"name": "test/fine"}, {"data": {}}]).encode(), 400, "events[1].name"),
        (json.dumps({"name": "test/fine", "data": "x"}).encode(), 400, "event.data"),
        (json.dumps([{"name": "test/fine"}, {"name": "test/fine", "data": {"s": "x" * 600_000}}]).encode(),
         413, "events[1]"),
        (json.dumps([{"name": "test/fine"}] * 5001).encode(), 413, "5000"),
        (b'{"name": "test/fine", "data": {"s": "' + b"x" * (5 * 1024 * 1024 + 10) + b'"}}', 413, "limit"),
    ],
    ids=["bad-json", "missing-name", "data-not-object", "event-too-big", "too-many-events", "body-too-big"],
)
def test_bad_requests_are_rejected_with_a_clear_message(
    dev_server: Callable[..., DevServer], raw: bytes, status: int, fragment: str,
) -> None:
    dev = dev_server(APP, expect_functions=2)
    code, body = http("POST", dev.url + "/e/dev", raw=raw)
    assert code == status, body
    assert fragment in body["error"]
    time.sleep(0.5)
    assert dev.runs() == []
    code, events = http("GET", dev.url + "/v1/events")
    assert code == 200 and events["data"] == []
