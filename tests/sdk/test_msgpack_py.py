"""The guest's pure-Python codec gives exactly msgpack's bytes and values, or defers to it."""

from __future__ import annotations

import math
import random
from typing import Any

import msgpack
import pytest

from sluice import _msgpack_py as fast

EDGES: list[Any] = [
    None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63,
    0.0, -0.0, 1.5, 1e300, math.inf, -math.inf,
    "", "a" * 31, "a" * 32, "a" * 255, "a" * 256, "a" * 65535, "a" * 65536, "é∑😀",
    b"", b"x" * 255, b"x" * 256, b"x" * 65536, bytearray(b"ab"),
    [], list(range(15)), list(range(16)), list(range(65536)), (1, 2),
    {}, {str(i): i for i in range(15)}, {str(i): i for i in range(16)}, {i: i for i in range(70000)},
    {1: "int key", None: "nil key", b"k": "bin key"}, [[[[{"deep": [None]}]]]],
]


@pytest.mark.parametrize("value", EDGES, ids=lambda v: repr(v)[:30])
def test_edge_values_encode_and_decode_as_msgpack_does(value: Any) -> None:
    expected = msgpack.packb(value, use_bin_type=True)
    assert fast.packb(value) == expected
    assert fast.unpackb(expected) == msgpack.unpackb(expected, raw=False, strict_map_key=False)


def _random_doc(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-2**63, 2**64 - 1) >> rng.randrange(64)
    if kind == 2:
        return rng.uniform(-1e9, 1e9)
    if kind == 3:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(40)))
    if kind == 4:
        return rng.randbytes(rng.randrange(300))
    if kind == 5:
        return -rng.randrange(40)
    if kind == 6:
        return [_random_doc(rng, depth + 1) for _ in range(rng.randrange(20))]
    return {str(rng.random()): _random_doc(rng, depth + 1) for _ in range(rng.randrange(20))}


def test_random_documents_round_trip_byte_for_byte() -> None:
    rng = random.Random(7)
    for _ in range(300):  # bounded
        doc = _random_doc(rng)
        expected = msgpack.packb(doc, use_bin_type=True)
        assert fast.packb(doc) == expected
        assert fast.unpackb(expected) == msgpack.unpackb(expected, raw=False, strict_map_key=False)


@pytest.mark.parametrize("value", [object(), 2**64, -2**63 - 1, memoryview(b"x"), {1, 2}, "\ud800"])
def test_what_it_does_not_cover_is_left_to_msgpack(value: Any) -> None:
    with pytest.raises((fast.Unsupported, UnicodeEncodeError)):
        fast.packb(value)


@pytest.mark.parametrize("data", [
    b"", b"\xc1", b"\x92\x01", b"\x01\x02", b"\xd4\x01\x02", b"\xd9\x05ab", b"\xa2\xff\xfe",
    b"\xdd\xff\xff\xff\xff", b"\x81\x90\x01", b"\x91" * 600 + b"\xc0",
])
def test_bad_or_unusual_bytes_are_left_to_msgpack(data: bytes) -> None:
    with pytest.raises(fast.Unsupported):
        fast.unpackb(data)


def test_the_protocol_uses_it_only_without_msgpacks_c_extension() -> None:
    from sluice import protocol

    assert (protocol._FAST is not None) == (msgpack.Packer.__module__ == "msgpack.fallback")
