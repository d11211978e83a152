"""Checking incoming events: every rejection names the field, nothing half-accepted."""

from __future__ import annotations

import json

import pytest

from runtime.events import EventError, parse_events
from runtime.limits import RuntimeLimits

LIMITS = RuntimeLimits()


def parse(doc: object) -> list[dict[str, object]]:
    return parse_events(json.dumps(doc).encode(), LIMITS, received_ms=1_000)


def test_a_single_event_gets_defaults_for_what_it_left_out() -> None:
    [ev] = parse({"name": "user/signup"})
    assert ev["name"] == "user/signup"
    assert ev["data"] == {} and ev["user"] == {} and ev["ts"] == 1_000
    assert isinstance(ev["id"], str) and len(ev["id"]) == 26


def test_an_array_of_events_keeps_their_ids_and_order() -> None:
    evs = parse([{"name": "a", "id": "one", "data": {"x": 1}, "ts": 5}, {"name": "b", "v": "2"}])
    assert [e["name"] for e in evs] == ["a", "b"]
    assert evs[0]["id"] == "one" and evs[0]["ts"] == 5 and evs[1]["v"] == "2"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{nope", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"42", 400, "object or array"),
        (b"[]", 400, "empty"),
        (b'{"data": {}}', 400, "event.name is required"),
        (b'{"name": ""}', 400, "event.name is required"),
        (b'{"name": "a", "data": [1]}', 400, "event.data must be an object"),
        (b'{"name": "a", "ts": "yesterday"}', 400, "event.ts"),
        (b'{"name": "a", "id": 7}', 400, "event.id"),
        (b'[{"name": "a"}, {"name": 3}]', 400, "events[1].name"),
        (b'[{"name": "a"}, "b"]', 400, "events[1] must be an object"),
    ],
)
def test_bad_input_is_rejected_with_a_message_naming_the_problem(body: bytes, status: int, fragment: str) -> None:
    with pytest.raises(EventError) as err:
        parse_events(body, LIMITS)
    assert err.value.status == status
    assert fragment in err.value.message


def test_a_name_longer_than_256_characters_is_rejected() -> None:
    with pytest.raises(EventError, match="256"):
        parse({"name": "x" * 257})


def test_an_event_over_512_kib_is_413_naming_which_one() -> None:
    with pytest.raises(EventError) as err:
        parse([{"name": "ok"}, {"name": "big", "data": {"blob": "x" * (512 * 1024)}}])
    assert err.value.status == 413 and "events[1]" in err.value.message


def test_more_than_5000_events_in_a_request_is_413() -> None:
    with pytest.raises(EventError) as err:
        parse([{"name": "e"}] * 5001)
    assert err.value.status == 413 and "5000" in err.value.message


def test_a_body_over_5_mib_is_413() -> None:
    small = RuntimeLimits(request_bytes=100)
    with pytest.raises(EventError) as err:
        parse_events(json.dumps({"name": "a", "data": {"s": "x" * 200}}).encode(), small)
    assert err.value.status == 413


def test_ids_made_for_a_batch_are_fresh_ulids_of_the_time_received() -> None:
    from runtime.ids import IdMaker, new_id

    evs = parse([{"name": "e"}] * 300)
    ids = [str(e["id"]) for e in evs]
    assert len(set(ids)) == 300
    prefix = new_id(1_000)[:10]  # the 48 bits of time, as runtime.ids encodes them
    assert all(len(i) == 26 and i.startswith(prefix) for i in ids)
    alphabet = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert all(set(i) <= alphabet for i in ids)
    later = IdMaker(1_767_225_600_123)()
    assert later[:10] == new_id(1_767_225_600_123)[:10] and later[:10] != prefix


@pytest.mark.parametrize(
    "data",
    [
        '{"s": "' + "é" * 50 + '"}',  # 2 bytes of UTF-8 become a 6-byte \\u escape
        '{"s": "' + "😀" * 50 + '"}',  # 4 bytes become two escapes: 12
        '{"f": [' + ",".join(["1e15"] * 40) + "]}",  # 4 bytes become 1000000000000000.0
        '{"s": "' + "\\u0041" * 50 + '"}',  # escapes that shrink
    ],
)
def test_an_event_grows_at_most_six_fold_when_re_encoded(data: str) -> None:
    """The bound that lets small bodies skip measuring each event (see parse_events)."""
    from runtime.events import _DEFAULTS_BYTES, _GROWTH

    body = ('{"name": "n", "data": ' + data + "}").encode()
    [ev] = parse_events(body, LIMITS, received_ms=1_000)
    size = len(json.dumps(ev, separators=(",", ":")).encode())
    assert size <= _GROWTH * len(body) + _DEFAULTS_BYTES
    assert (size > 2 * len(body)) == ("0041" not in data)  # the first three do grow, a lot


def test_a_big_body_still_measures_every_event_against_the_limit() -> None:
    small = RuntimeLimits(event_bytes=1_000)
    body = json.dumps([{"name": "ok"}, {"name": "big", "data": {"s": "é" * 300}}], ensure_ascii=False).encode()
    assert 6 * len(body) + 256 > 1_000  # too big to skip measuring
    with pytest.raises(EventError) as err:
        parse_events(body, small)
    assert err.value.status == 413 and "events[1]" in err.value.message
