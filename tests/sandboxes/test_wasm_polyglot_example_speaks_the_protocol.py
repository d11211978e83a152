"""examples/wasm/polyglot.wat, a function in WAT with no SDK, speaks guest protocol v1."""

from __future__ import annotations

from sandboxes.base import Limits, Target
from sandboxes.wasm import WasmSandbox
from sluice import protocol
from tests.sandboxes import wasm_fixtures as fx

wasm_cache, wasm_sandbox = fx.wasm_cache, fx.wasm_sandbox

POLYGLOT = Target("module", str(fx.POLYGLOT))


async def test_introspect_names_the_app_and_its_function(wasm_sandbox: WasmSandbox) -> None:
    result = await wasm_sandbox.run(POLYGLOT, protocol.pack({"v": 1, "kind": "introspect"}), Limits())
    assert result.ok, result.error
    app = protocol.decode_introspection(result.stdout)
    assert app["app"] == "polyglot"
    (fn,) = app["functions"]
    assert fn["id"] == "echo-size"
    assert fn["triggers"] == [{"event": "demo/ping", "if": None}]


async def test_a_call_is_done_and_reports_how_many_request_bytes_it_read(wasm_sandbox: WasmSandbox) -> None:
    request = protocol.pack({
        "v": 1, "kind": "call", "function": "echo-size",
        # the word "introspect" in the data does not make this an introspect request
        "event": {"name": "demo/ping", "data": {"note": "introspect" * 500}},
        "steps": {}, "run": {"id": "r1", "attempt": 0}, "target": None,
    })
    result = await wasm_sandbox.run(POLYGLOT, request, Limits())
    assert result.ok, result.error
    response = protocol.decode_response(result.stdout)
    assert response["ops"] == [{"op": "done", "data": {"language": "wat", "bytes_read": len(request)}}]


async def test_garbage_in_is_exit_code_2_with_a_reason(wasm_sandbox: WasmSandbox) -> None:
    result = await wasm_sandbox.run(POLYGLOT, b"\x01not msgpack", Limits())
    assert not result.ok and result.exit_code == 2
    assert result.error == "exited with code 2"
    assert result.stderr == b"polyglot: the request is not a msgpack map\n"
