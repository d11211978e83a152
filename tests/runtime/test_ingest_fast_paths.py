"""The ingest path's shortcuts give exactly what the plain code gave.

Ids are encoded by table instead of ``base64``, subjects are memoized, request bodies
are read without ``json.loads``'s extra scans, ``normalise`` has a path for events with
only a name and data, ``parse_events`` names a failing event only once one fails,
``pack`` reuses a ``msgpack.Packer`` per thread, and the API joins the ids of its
answer. Each is checked against the code it replaced, or against what that code gave.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest

from bus import OutMsg
from bus.memory import MemoryBus
from runtime.api import _ids_answer
from runtime.events import ID_MAX, NAME_MAX, EventError, _loads, normalise, parse_events
from runtime.history import History
from runtime.ids import _ALPHABET, IdMaker, _encode, derived_id, new_id
from runtime.limits import RuntimeLimits
from runtime.node import Node, NodeConfig
from runtime.streams import EVENTS_STREAM, JOBS_PREFIX, event_message, event_subject, job_subject, name_token
from sluice.protocol import pack, unpack

LIMITS = RuntimeLimits()
_B32 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())


def reference_encode(ms: int, tail: int) -> str:
    """The first implementation of ``runtime.ids._encode`` (through RFC 4648 base32)."""
    value = (ms & ((1 << 48) - 1)) << 80 | (tail & ((1 << 80) - 1))
    return base64.b32encode((value << 6).to_bytes(17, "big") + b"\0" * 3)[:26].translate(_B32).decode()


def test_ids_are_encoded_as_base32_encoded_them() -> None:
    rng = random.Random(20260101)
    edges = [0, 1, (1 << 48) - 1, 1 << 47, 1_767_225_600_000]
    tails = [0, 1, (1 << 80) - 1, 1 << 79, 0x0123456789ABCDEF0123]
    cases = [(ms, tail) for ms in edges for tail in tails]
    # Wider than the fields too: only the low 48 and 80 bits count.
    cases += [(rng.getrandbits(rng.choice((10, 41, 48, 52))), rng.getrandbits(rng.choice((7, 64, 80, 90))))
              for _ in range(20_000)]
    for ms, tail in cases:
        assert _encode(ms, tail) == reference_encode(ms, tail), (ms, tail)


def test_derived_and_new_ids_keep_their_values_and_shape() -> None:
    for ms, seed in [(0, "a"), (1_767_225_600_000, "evt-1/shop/f"), (99, "ünïcode/🙂")]:
        tail = int.from_bytes(hashlib.sha1(seed.encode("utf-8")).digest()[:10], "big")
        assert derived_id(ms, seed) == reference_encode(ms, tail)
    made = new_id(1_767_225_600_000)
    assert made[:10] == reference_encode(1_767_225_600_000, 0)[:10] and set(made) <= set(_ALPHABET)


def test_an_id_maker_makes_unique_ids_of_its_time() -> None:
    ms = 1_767_225_600_123
    maker = IdMaker(ms)
    ids = [maker() for _ in range(5_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 26 and set(i) <= set(_ALPHABET) and i[:10] == new_id(ms)[:10] for i in ids)
    assert {i[10] for i in ids} == set(_ALPHABET)  # the whole 80 random bits are used


def test_subjects_are_the_hash_of_the_name_and_memoized_within_bounds() -> None:
    for name in ["bench/ingest", "", "ünïcode/🙂", "x" * 300, *(f"n/{i}" for i in range(5_000))]:
        token = hashlib.sha1(name.encode("utf-8")).hexdigest()[:16]
        assert name_token(name) == token
        assert event_subject(name) == f"sluice.events.{token}"
        assert job_subject(name) == f"{JOBS_PREFIX}.{token}"
    for fn in (name_token, event_subject, job_subject):
        info = fn.cache_info()
        assert info.maxsize is not None and info.currsize <= info.maxsize
    with pytest.raises(UnicodeEncodeError):
        name_token("\ud800")  # a lone surrogate: refused as before, not cached


def test_an_event_message_is_the_message_it_was() -> None:
    event: dict[str, object] = {"id": "01KDX0000000000000000000AB", "name": "bench/ingest", "data": {"n": 1},
                                "ts": 1_767_225_600_000, "user": {}}
    expected = OutMsg(subject="sluice.events." + hashlib.sha1(b"bench/ingest").hexdigest()[:16],
                      data=msgpack.packb(event, use_bin_type=True), msg_id="01KDX0000000000000000000AB")
    assert event_message(event) == expected
    assert event_message(event).headers == {} and event_message(event).deliver_at is None


def _values(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.getrandbits(rng.choice((3, 8, 16, 33, 63))) * rng.choice((1, -1))
    if kind == 1:
        return rng.random() * 10 ** rng.randrange(-5, 20)
    if kind == 2:
        return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(128, 0x2FFF))))
                       for _ in range(rng.choice((0, 3, 31, 40, 300))))
    if kind == 3:
        return rng.randbytes(rng.choice((0, 5, 300)))
    if kind == 4:
        return rng.choice((None, True, False))
    if kind == 5:
        return rng.getrandbits(64)
    if kind in (6, 7):
        return {str(rng.random()): _values(rng, depth + 1) for _ in range(rng.randrange(20))}
    return [_values(rng, depth + 1) for _ in range(rng.randrange(20))]


def test_pack_writes_what_packb_writes_and_survives_its_own_failures() -> None:
    rng = random.Random(7)
    for i in range(2_000):
        value = _values(rng)
        assert pack(value) == msgpack.packb(value, use_bin_type=True)
        if i % 100 == 0:
            with pytest.raises((TypeError, UnicodeEncodeError)):
                pack({"ok": [1, 2, {"bad": object() if i % 200 else "\ud800"}]})
    big = {"blob": b"x" * 3_000_000, "text": "y" * 100_000}
    assert unpack(pack(big)) == big and pack({"a": 1}) == msgpack.packb({"a": 1}, use_bin_type=True)


def test_pack_from_many_threads_at_once() -> None:
    values = [{"n": i, "s": "v" * (i % 50), "l": list(range(i % 30))} for i in range(2_000)]
    wrong: list[object] = []

    def work() -> None:
        for v in values:
            if pack(v) != msgpack.packb(v, use_bin_type=True):
                wrong.append(v)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def reference_normalise(ev: Any, where: str, limits: RuntimeLimits, received: int, *, measure: bool = True,
                        new_id: Callable[[], str]) -> dict[str, Any]:
    """``runtime.events.normalise`` before its shortcut, as it was."""
    if not isinstance(ev, dict):
        raise EventError(400, f"{where} must be an object, not {_json_type(ev)}")
    name = ev.get("name")
    if not isinstance(name, str) or not name.strip():
        raise EventError(400, f"{where}.name is required: a non-empty string")
    if len(name) > NAME_MAX:
        raise EventError(400, f"{where}.name is {len(name)} characters; the limit is {NAME_MAX}")
    data = ev.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError(400, f"{where}.data must be an object, not {_json_type(data)}")
    ts = ev.get("ts", received)
    if ts is None:
        ts = received
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise EventError(400, f"{where}.ts must be a non-negative integer (ms since the epoch)")
    event_id = ev.get("id")
    if event_id is None or event_id == "":
        event_id = new_id()
    elif not isinstance(event_id, str) or len(event_id) > ID_MAX:
        raise EventError(400, f"{where}.id must be a string of at most {ID_MAX} characters")
    user = ev.get("user", {})
    if user is None:
        user = {}
    if not isinstance(user, dict):
        raise EventError(400, f"{where}.user must be an object, not {_json_type(user)}")
    out: dict[str, Any] = {"id": event_id, "name": name, "data": data, "ts": ts, "user": user}
    v = ev.get("v")
    if v is not None:
        if not isinstance(v, str):
            raise EventError(400, f"{where}.v must be a string")
        out["v"] = v
    if measure:
        size = len(json.dumps(out, separators=(",", ":")).encode("utf-8"))
        if size > limits.event_bytes:
            raise EventError(413, f"{where} is {size} bytes; the limit is {limits.event_bytes} an event")
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


FIELD_VALUES: dict[str, list[Any]] = {
    "name": ["a", "bench/ingest", "", "  ", 3, None, ["x"], "n" * NAME_MAX, "n" * (NAME_MAX + 1)],
    "data": [{}, {"n": 1}, None, [1], "s", 0, {"big": "x" * 600_000}],
    "ts": [0, 5, -1, None, True, 1.5, "yesterday"],
    "id": ["one", "", None, 7, "i" * ID_MAX, "i" * (ID_MAX + 1)],
    "user": [{}, {"u": 1}, None, [1], False],
    "v": ["2", None, 2],
    "extra": [1],
}


def _events(rng: random.Random) -> Iterator[Any]:
    yield from ("not an event", 3, None, [], {})
    for _ in range(3_000):
        fields = [f for f in FIELD_VALUES if rng.random() < (0.9 if f in ("name", "data") else 0.25)]
        yield {f: rng.choice(FIELD_VALUES[f]) for f in fields}


def _outcome(fn: Callable[..., dict[str, Any]], ev: Any, measure: bool, received: int = 1_000) -> object:
    counter = iter(range(10**6))
    try:
        return fn(ev, "events[3]", LIMITS, received, measure=measure, new_id=lambda: f"id-{next(counter)}")
    except EventError as exc:
        return (exc.status, exc.message)


def test_normalise_gives_what_it_gave_for_any_event() -> None:
    rng = random.Random(11)
    shortcut = 0
    for ev in _events(rng):
        for measure in (True, False):
            got, want = _outcome(normalise, ev, measure), _outcome(reference_normalise, ev, measure)
            assert got == want, ev
            if isinstance(got, dict) and isinstance(want, dict):
                assert list(got) == list(want)  # the same order of keys: the same msgpack bytes
                assert pack(got) == pack(want)
                shortcut += set(ev) <= {"name", "data"}
    assert shortcut > 100
    for received in (0, -1, True):  # a received time that is not one fails as it did
        for ev in ({"name": "a"}, {"name": "a", "data": {}}, {"name": "a", "ts": 5}):
            assert _outcome(normalise, ev, True, received) == _outcome(reference_normalise, ev, True, received)


def test_a_batch_names_the_first_event_that_fails() -> None:
    good = [{"name": "a", "data": {"i": i}} for i in range(10)]
    for bad, message in [({"name": ""}, "events[4].name is required: a non-empty string"),
                         ({"name": "a", "ts": -1}, "events[4].ts must be a non-negative integer"),
                         ("x", "events[4] must be an object, not a string")]:
        body = json.dumps([*good[:4], bad, *good[4:], {"name": 3}]).encode()
        with pytest.raises(EventError) as err:
            parse_events(body, LIMITS)
        assert err.value.status == 400 and err.value.message.startswith(message)
    evs = parse_events(json.dumps(good).encode(), LIMITS, received_ms=77)
    assert [e["data"] for e in evs] == [g["data"] for g in good] and all(e["ts"] == 77 for e in evs)
    assert len({e["id"] for e in evs}) == 10 and all(list(e) == ["id", "name", "data", "ts", "user"] for e in evs)


@pytest.mark.parametrize("ids", [
    ["01KDX0000000000000000000AB"],
    [new_id() for _ in range(1_000)],
    ["plain", "with space", "~!@#$%^&*()"],
    ['a"quote'], ["back\\slash"], ["new\nline"], ["tab\t"], ["del\x7f"], ["é"], ["🙂"], ["\ud800"],
    ["", "x"], [""], ['",', "x"],
])
def test_the_answer_to_a_post_is_what_json_dumps_wrote(ids: list[str]) -> None:
    assert _ids_answer(ids) == json.dumps({"ids": ids, "status": 200}, separators=(",", ":")).encode()


def _json_outcome(fn: Callable[[bytes], Any], body: bytes) -> object:
    try:
        value = fn(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return (type(exc).__name__, str(exc))
    return ("ok", json.dumps(value), repr(value))  # repr: keeps floats, NaN and lone surrogates exact


BODIES = [
    b'{"name": "a", "data": {"n": 1}}', b'[{"name": "a"}, {"name": "b"}]', b"{}", b"[]", b"{", b"[", b"[1",
    b'{"a": 1} ', b'{"a": 1}\n\r\t ', b'{"a": 1}\x0c', b'{"a": 1} x', b'{"a": 1}{"b": 2}', b'[1] [2]',
    b' {"a": 1}', b'\n[1]', b'"s"', b"3", b"null", b"nope", b'{"a": NaN, "b": -Infinity, "c": 1e400}',
    b'{"a": "\\ud800"}', b'{"a": "\xed\xa0\x80"}', b'{"a": "\xff"}', b'{"\xc3\xa9": "\xf0\x9f\x99\x82"}',
    b"\xef\xbb\xbf{}", '{"a": 1}'.encode("utf-16-le"), '{"a": 1}'.encode("utf-16-be"),
    '[1]'.encode("utf-32-le"), '{"a": "é"}'.encode("utf-16"), b"{\0", b"[\0\0\0", b'{"a": 1,}', b"[1,]",
    b'{"a": 1.5e3, "b": [true, false, null], "c": {"d": []}}', b'[' * 50 + b']' * 50,
]


@pytest.mark.parametrize("body", BODIES)
def test_json_is_read_as_json_loads_reads_it(body: bytes) -> None:
    assert _json_outcome(_loads, body) == _json_outcome(json.loads, body)


def test_random_bodies_are_read_as_json_loads_reads_them() -> None:
    rng = random.Random(3)
    for _ in range(2_000):
        body = json.dumps(_json_values(rng), ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        if rng.random() < 0.3:  # damaged: cut, a byte changed, or something after it
            at = rng.randrange(len(body) + 1)
            body = rng.choice((body[:at], body[:at] + bytes([rng.randrange(256)]) + body[at + 1:],
                               body + rng.choice((b" ", b"\n", b"x", b"\x0b", b"1", b"\0"))))
        assert _json_outcome(_loads, body) == _json_outcome(json.loads, body), body


def _json_values(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice((None, True, False, 0, -1, 2**70, 1.5, float("inf")))
    if kind == 1:
        return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(0, 0x10FFFF))))
                       for _ in range(rng.randrange(8)))
    if kind in (2, 3):
        return rng.random() * 10 ** rng.randrange(-10, 30)
    if kind in (4, 5):
        return {str(rng.random()): _json_values(rng, depth + 1) for _ in range(rng.randrange(6))}
    return [_json_values(rng, depth + 1) for _ in range(rng.randrange(6))]


async def test_a_post_is_answered_and_stored_as_before(tmp_path: Path) -> None:
    bus = MemoryBus()
    node = Node(NodeConfig(port=0, roles=("api",)), bus=bus, history=History(f"sqlite:///{tmp_path / 'h.db'}"),
                sandboxes={})
    await node.start()
    try:
        async with aiohttp.ClientSession() as http:
            bodies: list[Any] = [{"name": "fast/one", "data": {"n": 1}}, {"name": "fast/own", "id": 'my "id" \\ é'},
                                 [{"name": "fast/many", "data": {"i": i}} for i in range(300)]]
            answered: list[str] = []
            for body in bodies:
                async with http.post(f"{node.url}/e/dev", data=json.dumps(body)) as resp:
                    raw = await resp.read()
                    assert resp.status == 200 and resp.headers["Content-Type"] == "application/json; charset=utf-8"
                    ids = json.loads(raw)["ids"]
                    assert raw == json.dumps({"ids": ids, "status": 200}, separators=(",", ":")).encode()
                    assert len(ids) == (len(body) if isinstance(body, list) else 1)
                    answered += ids
        assert 'my "id" \\ é' in answered
        stored = await bus.read_since(EVENTS_STREAM, "sluice.events.>", 0.0)
        assert [unpack(m.data)["id"] for m in stored] == answered
        for m in stored:
            event = unpack(m.data)
            assert list(event) == ["id", "name", "data", "ts", "user"]
            assert (m.subject, m.data) == (event_subject(event["name"]), msgpack.packb(event, use_bin_type=True))
    finally:
        await node.stop()
