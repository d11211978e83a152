"""Garbage instead of msgpack, a response claiming another protocol version, and decoder
bombs (lengths of four billion, nesting past any stack, trailing bytes, forged ops): the
guest sends them through the real shim's own transport (it patches its SDK's encoder for
one answer; a module writes them to stdout), and ``sluice.protocol.decode_response``
refuses each with a :class:`ProtocolError`, quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandboxes.base import Result, Target
from sluice import protocol
from sluice.protocol import ProtocolError
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

emit_app = fx.app_fixture("emit", '''
@app.function(id="emit")
def emit(ctx):
    """Answer this one call with the bytes given, whatever the transport (raw or framed)."""
    import sluice._app as sdk

    data = ctx.event.data["bytes"]
    original = sdk.pack  # what the SDK's encoder calls once this function has returned

    def once(*args, **kwargs):
        sdk.pack = original
        return data

    sdk.pack = once
''')

DONE = {"op": "done", "data": "pwned"}
GARBAGE = b"\xc1 this is not msgpack"
OTHER_VERSIONS = {
    "v2": protocol.pack({"v": 2, "ops": [DONE]}),
    "v0": protocol.pack({"v": 0, "ops": [DONE]}),
    "no-v": protocol.pack({"ops": [DONE]}),
    "v-as-string": protocol.pack({"v": "1", "ops": [DONE]}),
}
#: Versions Python's == takes for 1.
LOOKALIKE_VERSIONS = {
    "v-true": protocol.pack({"v": True, "ops": [DONE]}),
    "v-1.0": protocol.pack({"v": 1.0, "ops": [DONE]}),
}
BOMBS = {
    "array-of-4-billion": b"\xdd\xff\xff\xff\xff",
    "map-of-4-billion": b"\xdf\xff\xff\xff\xff",
    "string-of-4-gib": b"\xdb\xff\xff\xff\xff" + b"x" * 16,
    "nested-100000-deep": b"\x91" * 100_000 + b"\xc0",
    "trailing-bytes": protocol.pack({"v": 1, "ops": [DONE]}) + b"\x00",
    "truncated": protocol.pack({"v": 1, "ops": [DONE]})[:-3],
    "ext-type": b"\xd4\x01\x00",
    "ops-not-a-list": protocol.pack({"v": 1, "ops": {"op": "done"}}),
    "forged-sleep-op": protocol.pack({"v": 1, "ops": [{"op": "sleep", "id": "s", "name": "s", "until_ms": "never"}]}),
    "bool-as-int": protocol.pack({"v": 1, "ops": [{"op": "sleep", "id": "s", "name": "s", "until_ms": True}]}),
    "unknown-op": protocol.pack({"v": 1, "ops": [{"op": "exec", "cmd": "rm -rf /"}]}),
}


def emit_module(data: bytes) -> str:
    """WAT writing ``data`` to stdout and exiting 0."""
    escaped = "".join(f"\\{b:02x}" for b in data)
    return f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {1 + len(data) // 65536 + 1})
  (data (i32.const 64) "{escaped}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len(data)}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


async def emitted(guest: fx.Guest, app: Target, tmp_path: Path, data: bytes) -> str:
    """Have the guest answer with ``data``; how the host took it (a ProtocolError, checked)."""
    if guest.kind == "wasm-module":
        result = await fx.attack(guest, fx.module_target(tmp_path, "emit", emit_module(data)), b"")
    else:
        result = await fx.attack(guest, app, call("emit", {"bytes": data}))
    assert isinstance(result, Result) and result.ok, result  # the guest did answer, with these bytes
    assert result.stdout == data
    started = time.monotonic()
    with pytest.raises(ProtocolError) as refused:
        protocol.decode_response(result.stdout)
    assert time.monotonic() - started < 1.0, "the decoder took its time over a bomb"
    return f"ProtocolError: {refused.value}"


ALL_KINDS = fx.PYTHON_KINDS + fx.MODULE_KINDS


@pytest.mark.parametrize("guest", ALL_KINDS, indirect=True)
async def test_garbage_instead_of_msgpack_is_a_protocol_error(
    guest: fx.Guest, emit_app: Target, tmp_path: Path
) -> None:
    outcome = guest.note(await emitted(guest, emit_app, tmp_path, GARBAGE))
    assert outcome.startswith("ProtocolError: not msgpack"), outcome


@pytest.mark.parametrize("guest", ALL_KINDS, indirect=True)
async def test_a_response_claiming_another_protocol_version_is_rejected(
    guest: fx.Guest, emit_app: Target, tmp_path: Path
) -> None:
    for name, data in OTHER_VERSIONS.items():
        outcome = guest.note(f"{name}: " + await emitted(guest, emit_app, tmp_path, data))
        assert "unsupported protocol version" in outcome, outcome


@pytest.mark.parametrize("guest", ALL_KINDS, indirect=True)
async def test_a_response_claiming_version_true_or_1_0_is_rejected(
    guest: fx.Guest, emit_app: Target, tmp_path: Path
) -> None:
    for name, data in LOOKALIKE_VERSIONS.items():
        outcome = guest.note(f"{name}: " + await emitted(guest, emit_app, tmp_path, data))
        assert "unsupported protocol version" in outcome, outcome


@pytest.mark.parametrize("guest", ALL_KINDS, indirect=True)
async def test_decoder_bombs_are_protocol_errors(guest: fx.Guest, emit_app: Target, tmp_path: Path) -> None:
    outcomes = {name: await emitted(guest, emit_app, tmp_path, data) for name, data in BOMBS.items()}
    guest.note("; ".join(f"{name}: {text[15:60]}" for name, text in outcomes.items()))
