"""A fast pure-Python msgpack codec for the subset the protocol uses, for guests without
msgpack's C extension (CPython for WASI has none).

msgpack's own pure-Python fallback is general (streaming, ext types, hooks) and spends
most of a WASM guest's call decoding and encoding. This codec handles the types the
protocol carries (nil, bool, int, float, str, bin, array, map) with one dispatch per
value and returns exactly what ``msgpack.packb(obj, use_bin_type=True)`` and
``msgpack.unpackb(data, raw=False, strict_map_key=False)`` return. Anything else (an
ext type, a value it does not know, bytes that are not valid msgpack) raises
:class:`Unsupported`, and :mod:`sluice.protocol` then hands the whole value to msgpack
itself, so results and errors stay msgpack's. ``tests/sdk/test_msgpack_py.py`` checks
both directions against msgpack on edge values and random documents.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # not typing's: the guest must not pay for importing typing (see protocol.py)
if TYPE_CHECKING:
    from typing import Any

_B = struct.Struct(">B")
_H = struct.Struct(">H")
_I = struct.Struct(">I")
_Q = struct.Struct(">Q")
_b = struct.Struct(">b")
_h = struct.Struct(">h")
_i = struct.Struct(">i")
_q = struct.Struct(">q")
_f = struct.Struct(">f")
_d = struct.Struct(">d")
_MAX_DEPTH = 512


class Unsupported(Exception):
    """Not in this codec's subset (or not valid msgpack): use msgpack itself."""


# --- encoding ------------------------------------------------------------------------

def packb(obj: Any) -> bytes:
    out: list[bytes] = []
    _pack(obj, out, 0)
    return b"".join(out)


def _pack(obj: Any, out: list[bytes], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise Unsupported("too deep")
    if obj is None:
        out.append(b"\xc0")
    elif obj is True:
        out.append(b"\xc3")
    elif obj is False:
        out.append(b"\xc2")
    elif isinstance(obj, str):
        data = obj.encode("utf-8")  # raises on lone surrogates, as msgpack does: fall back
        n = len(data)
        if n < 32:
            out.append(bytes((0xA0 | n,)))
        elif n < 0x100:
            out.append(b"\xd9" + _B.pack(n))
        elif n < 0x10000:
            out.append(b"\xda" + _H.pack(n))
        elif n < 0x100000000:
            out.append(b"\xdb" + _I.pack(n))
        else:
            raise Unsupported("str too long")
        out.append(data)
    elif isinstance(obj, int):
        out.append(_pack_int(obj))
    elif isinstance(obj, float):
        out.append(b"\xcb" + _d.pack(obj))
    elif isinstance(obj, dict):
        n = len(obj)
        if n < 16:
            out.append(bytes((0x80 | n,)))
        elif n < 0x10000:
            out.append(b"\xde" + _H.pack(n))
        elif n < 0x100000000:
            out.append(b"\xdf" + _I.pack(n))
        else:
            raise Unsupported("map too long")
        for key, value in obj.items():
            _pack(key, out, depth + 1)
            _pack(value, out, depth + 1)
    elif isinstance(obj, list | tuple):
        n = len(obj)
        if n < 16:
            out.append(bytes((0x90 | n,)))
        elif n < 0x10000:
            out.append(b"\xdc" + _H.pack(n))
        elif n < 0x100000000:
            out.append(b"\xdd" + _I.pack(n))
        else:
            raise Unsupported("array too long")
        for item in obj:
            _pack(item, out, depth + 1)
    elif isinstance(obj, bytes | bytearray):
        n = len(obj)
        if n < 0x100:
            out.append(b"\xc4" + _B.pack(n))
        elif n < 0x10000:
            out.append(b"\xc5" + _H.pack(n))
        elif n < 0x100000000:
            out.append(b"\xc6" + _I.pack(n))
        else:
            raise Unsupported("bin too long")
        out.append(bytes(obj))
    else:
        raise Unsupported(type(obj).__name__)


def _pack_int(n: int) -> bytes:
    if 0 <= n < 0x80:
        return bytes((n,))
    if -32 <= n < 0:
        return bytes((n & 0xFF,))
    if n >= 0:
        if n < 0x100:
            return b"\xcc" + _B.pack(n)
        if n < 0x10000:
            return b"\xcd" + _H.pack(n)
        if n < 0x100000000:
            return b"\xce" + _I.pack(n)
        if n < 0x10000000000000000:
            return b"\xcf" + _Q.pack(n)
        raise Unsupported("int too big")
    if n >= -0x80:
        return b"\xd0" + _b.pack(n)
    if n >= -0x8000:
        return b"\xd1" + _h.pack(n)
    if n >= -0x80000000:
        return b"\xd2" + _i.pack(n)
    if n >= -0x8000000000000000:
        return b"\xd3" + _q.pack(n)
    raise Unsupported("int too small")


# --- decoding ------------------------------------------------------------------------

def unpackb(data: bytes) -> Any:
    view = bytes(data)
    try:
        obj, end = _unpack(view, 0, 0)
    except (IndexError, struct.error, UnicodeDecodeError, TypeError, RecursionError) as exc:
        raise Unsupported(str(exc)) from None
    if end != len(view):
        raise Unsupported("extra data")
    return obj


def _unpack(data: bytes, i: int, depth: int) -> tuple[Any, int]:
    if depth > _MAX_DEPTH:
        raise Unsupported("too deep")
    b = data[i]
    i += 1
    if b < 0x80:
        return b, i
    if b >= 0xE0:
        return b - 0x100, i
    if 0xA0 <= b < 0xC0:
        n = b & 0x1F
        return _text(data, i, n), i + n
    if 0x80 <= b < 0x90:
        return _map(data, i, b & 0x0F, depth)
    if 0x90 <= b < 0xA0:
        return _array(data, i, b & 0x0F, depth)
    if b == 0xC0:
        return None, i
    if b == 0xC2:
        return False, i
    if b == 0xC3:
        return True, i
    if b == 0xCB:
        return _d.unpack_from(data, i)[0], i + 8
    if b == 0xCC:
        return data[i], i + 1
    if b == 0xCD:
        return _H.unpack_from(data, i)[0], i + 2
    if b == 0xCE:
        return _I.unpack_from(data, i)[0], i + 4
    if b == 0xCF:
        return _Q.unpack_from(data, i)[0], i + 8
    if b == 0xD0:
        return _b.unpack_from(data, i)[0], i + 1
    if b == 0xD1:
        return _h.unpack_from(data, i)[0], i + 2
    if b == 0xD2:
        return _i.unpack_from(data, i)[0], i + 4
    if b == 0xD3:
        return _q.unpack_from(data, i)[0], i + 8
    if b == 0xCA:
        return _f.unpack_from(data, i)[0], i + 4
    if b == 0xD9:
        n = data[i]
        return _text(data, i + 1, n), i + 1 + n
    if b == 0xDA:
        n = _H.unpack_from(data, i)[0]
        return _text(data, i + 2, n), i + 2 + n
    if b == 0xDB:
        n = _I.unpack_from(data, i)[0]
        return _text(data, i + 4, n), i + 4 + n
    if b == 0xC4:
        n = data[i]
        return _bin(data, i + 1, n), i + 1 + n
    if b == 0xC5:
        n = _H.unpack_from(data, i)[0]
        return _bin(data, i + 2, n), i + 2 + n
    if b == 0xC6:
        n = _I.unpack_from(data, i)[0]
        return _bin(data, i + 4, n), i + 4 + n
    if b == 0xDC:
        return _array(data, i + 2, _H.unpack_from(data, i)[0], depth)
    if b == 0xDD:
        return _array(data, i + 4, _I.unpack_from(data, i)[0], depth)
    if b == 0xDE:
        return _map(data, i + 2, _H.unpack_from(data, i)[0], depth)
    if b == 0xDF:
        return _map(data, i + 4, _I.unpack_from(data, i)[0], depth)
    raise Unsupported(f"type byte 0x{b:02x}")  # ext types, 0xc1


def _text(data: bytes, i: int, n: int) -> str:
    if i + n > len(data):
        raise Unsupported("truncated str")
    return data[i:i + n].decode("utf-8")


def _bin(data: bytes, i: int, n: int) -> bytes:
    if i + n > len(data):
        raise Unsupported("truncated bin")
    return data[i:i + n]


def _array(data: bytes, i: int, n: int, depth: int) -> tuple[list[Any], int]:
    if n > len(data) - i:  # each item takes at least a byte: a bogus length fails here, not in memory
        raise Unsupported("truncated array")
    out = []
    for _ in range(n):
        item, i = _unpack(data, i, depth + 1)
        out.append(item)
    return out, i


def _map(data: bytes, i: int, n: int, depth: int) -> tuple[dict[Any, Any], int]:
    if 2 * n > len(data) - i:
        raise Unsupported("truncated map")
    out = {}
    for _ in range(n):
        key, i = _unpack(data, i, depth + 1)
        value, i = _unpack(data, i, depth + 1)
        out[key] = value  # an unhashable key raises TypeError: msgpack then reports it
    return out, i
