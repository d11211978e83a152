"""The guest protocol, version 1: the only bytes that cross a sandbox wall.

Defined once, here, and imported by both the guest shim (inside the sandbox) and
the runtime's executor (on the host). It depends on ``msgpack`` and the standard
library only, because it runs inside every sandbox. ``docs/protocol.md`` describes
the same thing byte for byte.

A request is a msgpack map sent host -> guest; a response is a msgpack map
``{"v": 1, "ops": [...]}`` (or, for ``introspect``, the app's description) sent
guest -> host. Two transports carry the same bytes:

* one-shot: the request is the whole of stdin, the response the whole of stdout;
* framed (warm): each message is a 4-byte big-endian length, then the body.
"""

from __future__ import annotations

import hashlib
import struct

import msgpack

# typing.TYPE_CHECKING without importing typing: the guest imports this module on every
# call, and under CPython-on-WASI ``typing`` (with ``re`` and ``enum``) costs ~30 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

    # Re-exported (the "as" form says so); at run time __getattr__ below provides them.
    from sluice._protocol_types import ErrorInfo as ErrorInfo
    from sluice._protocol_types import Request as Request
    from sluice._protocol_types import Response as Response
    from sluice._protocol_types import RunInfo as RunInfo

VERSION = 1

#: Largest frame either side accepts on the framed transport (bytes).
MAX_FRAME_BYTES = 64 * 1024 * 1024

OP_KINDS = frozenset({
    "done", "error", "step", "step_error",
    "sleep", "wait_for_event", "send_event", "invoke", "planned", "fetch",
})


class ProtocolError(ValueError):
    """Bytes that do not follow the protocol; the message says what is wrong."""


_TYPE_NAMES = frozenset({"ErrorInfo", "RunInfo", "Request", "Response"})


def __getattr__(name: str) -> object:
    """The TypedDicts ``ErrorInfo``, ``RunInfo``, ``Request`` and ``Response``, loaded on
    first use (they live in ``sluice._protocol_types`` so the guest never imports ``typing``)."""
    if name in _TYPE_NAMES:
        from sluice import _protocol_types

        return getattr(_protocol_types, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Required fields of each op and the Python type each must have.
_OP_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "done": {},
    "error": {"error": dict, "retriable": bool},
    "step": {"id": str, "name": str},
    "step_error": {"id": str, "name": str, "error": dict, "retriable": bool},
    "sleep": {"id": str, "name": str, "until_ms": int},
    "wait_for_event": {"id": str, "name": str, "event": str, "timeout_ms": int},
    "send_event": {"id": str, "name": str, "events": list},
    "invoke": {"id": str, "name": str, "function": str, "timeout_ms": int},
    "planned": {"id": str, "name": str},
    "fetch": {"id": str, "name": str, "request": dict, "timeout_ms": int},
}


def _is_version(value: Any) -> bool:
    """Exactly the integer 1: ``True`` and ``1.0`` equal 1 in Python but are not version 1."""
    return type(value) is int and value == VERSION


def step_id(name: str, occurrence: int = 0) -> str:
    """The stable id of a step: hex SHA-1 of its name; repeats hash ``name:1``, ``name:2``…

    ``occurrence`` counts earlier steps with the same name in this run (0 for the first).
    """
    key = name if occurrence == 0 else f"{name}:{occurrence}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


#: Without msgpack's C extension (CPython for WASI), a faster pure-Python codec for the
#: protocol's types goes first; it defers to msgpack for anything else (see _msgpack_py).
#: With it (the host), each thread reuses one ``msgpack.Packer``: ``packb`` makes and
#: frees one per call, about half the cost of packing a small map. A Packer keeps the
#: buffer it grew to, so one that packed more than ``_KEEP_BYTES`` is let go.
if msgpack.Packer.__module__ == "msgpack.fallback":
    from sluice import _msgpack_py as _FAST
else:
    import threading

    _FAST = None  # type: ignore[assignment]
    _PACKERS = threading.local()
    _KEEP_BYTES = 1 << 20


def pack(obj: Any) -> bytes:
    """Encode ``obj`` as msgpack (str as str, bytes as bin)."""
    if _FAST is not None:
        try:
            return _FAST.packb(obj)  # type: ignore[no-any-return]
        except (_FAST.Unsupported, UnicodeEncodeError):
            pass
        return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]
    try:
        packer = _PACKERS.packer
    except AttributeError:
        packer = _PACKERS.packer = msgpack.Packer(use_bin_type=True)
    # A Packer resets its buffer when packing raises, so a failed call leaves it usable.
    data: bytes = packer.pack(obj)
    if len(data) > _KEEP_BYTES:
        del _PACKERS.packer
    return data


def unpack(data: bytes) -> Any:
    """Decode one msgpack value; raise :class:`ProtocolError` on anything else."""
    if _FAST is not None:
        try:
            return _FAST.unpackb(data)
        except _FAST.Unsupported:
            pass
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
        raise ProtocolError(f"not msgpack: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # msgpack raises a handful of unrelated types on garbage
        raise ProtocolError(f"not msgpack: {type(exc).__name__}: {exc}") from None


def decode_request(data: bytes) -> Request:
    """Decode and check a host -> guest request."""
    req = unpack(data)
    if not isinstance(req, dict):
        raise ProtocolError(f"request must be a map, got {type(req).__name__}")
    if not _is_version(req.get("v")):
        raise ProtocolError(f"unsupported protocol version {req.get('v')!r} (this side speaks {VERSION})")
    if req.get("kind") not in ("call", "introspect"):
        raise ProtocolError(f"unknown request kind {req.get('kind')!r}")
    if req["kind"] == "call" and not isinstance(req.get("function"), str):
        raise ProtocolError("a call request needs 'function' (a string)")
    return req  # type: ignore[return-value]


def decode_response(data: bytes) -> Response:
    """Decode and check a guest -> host call response; every op is validated."""
    if not data:
        raise ProtocolError("empty response (the guest wrote nothing to stdout)")
    resp = unpack(data)
    if not isinstance(resp, dict):
        raise ProtocolError(f"response must be a map, got {type(resp).__name__}")
    if not _is_version(resp.get("v")):
        raise ProtocolError(f"unsupported protocol version {resp.get('v')!r} (host speaks {VERSION})")
    ops = resp.get("ops")
    if not isinstance(ops, list):
        raise ProtocolError("response needs 'ops' (a list)")
    for i, op in enumerate(ops):
        check_op(op, i)
    return resp  # type: ignore[return-value]


def check_op(op: Any, index: int = 0) -> None:
    """Raise :class:`ProtocolError` naming the field if ``op`` is malformed."""
    if not isinstance(op, dict):
        raise ProtocolError(f"op {index} must be a map, got {type(op).__name__}")
    kind = op.get("op")
    if kind not in OP_KINDS:
        raise ProtocolError(f"op {index}: unknown op {kind!r}")
    for field, typ in _OP_FIELDS[kind].items():
        value = op.get(field)
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ProtocolError(f"op {index} ({kind}): field {field!r} must be {_type_name(typ)}")


def decode_introspection(data: bytes) -> dict[str, Any]:
    """Decode and check an ``introspect`` response."""
    if not data:
        raise ProtocolError("empty introspect response (the guest wrote nothing to stdout)")
    resp = unpack(data)
    if not isinstance(resp, dict):
        raise ProtocolError(f"introspect response must be a map, got {type(resp).__name__}")
    if not _is_version(resp.get("v")):
        raise ProtocolError(f"unsupported protocol version {resp.get('v')!r} (host speaks {VERSION})")
    # A guest that could not load its app answers introspect with an error op, as it does a call.
    ops = resp.get("ops")
    if "app" not in resp and isinstance(ops, list) and ops and isinstance(ops[0], dict) \
            and ops[0].get("op") == "error" and isinstance(ops[0].get("error"), dict):
        err = ops[0]["error"]
        raise ProtocolError(f"the guest reported {err.get('name', 'an error')}: {err.get('message', '')}")
    if not isinstance(resp.get("app"), str) or not resp["app"]:
        raise ProtocolError("introspect response needs 'app' (a non-empty string)")
    fns = resp.get("functions")
    if not isinstance(fns, list):
        raise ProtocolError("introspect response needs 'functions' (a list)")
    if not isinstance(resp.get("reuse_instances", False), bool):
        raise ProtocolError("introspect response's 'reuse_instances' must be a boolean")
    for i, fn in enumerate(fns):
        if not isinstance(fn, dict) or not isinstance(fn.get("id"), str) or not fn["id"]:
            raise ProtocolError(f"function {i}: needs 'id' (a non-empty string)")
        if not isinstance(fn.get("triggers"), list):
            raise ProtocolError(f"function {fn['id']!r}: needs 'triggers' (a list)")
    return resp


def _type_name(typ: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", dict: "a map", list: "a list"}
    if isinstance(typ, tuple):
        return " or ".join(names.get(t, t.__name__) for t in typ)
    return names.get(typ, typ.__name__)


# --- framed transport ---------------------------------------------------------

_LEN = struct.Struct(">I")


def frame(body: bytes) -> bytes:
    """One frame: 4-byte big-endian length, then ``body``."""
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return _LEN.pack(len(body)) + body


def read_frame(stream: IO[bytes]) -> bytes | None:
    """Read one frame from a blocking binary stream; ``None`` at a clean end of input."""
    head = _read_exactly(stream, 4, allow_eof=True)
    if head is None:
        return None
    (size,) = _LEN.unpack(head)
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    body = _read_exactly(stream, size, allow_eof=False)
    assert body is not None
    return body


def _read_exactly(stream: IO[bytes], n: int, *, allow_eof: bool) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            if allow_eof and not buf:
                return None
            raise ProtocolError(f"stream ended after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)
