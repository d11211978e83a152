"""A Python app runs under CPython for WASI, sees only its read-only files, and is capped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandboxes.base import Limits, Target
from sandboxes.wasm import WasmSandbox
from sluice import protocol
from tests.sandboxes import wasm_fixtures as fx

wasm_cache, wasm_sandbox = fx.wasm_cache, fx.wasm_sandbox

pytestmark = pytest.mark.slow  # the first test compiles CPython for WASI (about 3-5 s, then cached)

PROBE_APP = '''
import os
import sluice

app = sluice.App("probe")
print("loading the probe app")  # the shim sends prints to stderr


def attempt(fn):
    try:
        return fn()
    except Exception as exc:
        return type(exc).__name__


@app.function(id="look-around", trigger=sluice.event("probe/look"))
def look_around(ctx):
    return {
        "passwd": attempt(lambda: open("/etc/passwd").read()),
        "own_source": attempt(lambda: len(open("/app/app.py").read()) > 0),
        "write_app": attempt(lambda: open("/app/new.txt", "w").write("x")),
        "write_tmp": attempt(lambda: open("/tmp/x", "w").write("x")),
        "root": attempt(lambda: os.listdir("/")),
        "env": dict(os.environ),
        "echo": ctx.event.data,
    }


@app.function(id="spin", trigger=sluice.event("probe/spin"))
def spin(ctx):
    while True:
        pass


@app.function(id="hog", trigger=sluice.event("probe/hog"))
def hog(ctx):
    chunks = []
    while True:
        chunks.append(bytearray(1 << 20))
'''


def call(function: str, data: dict[str, object] | None = None) -> bytes:
    return protocol.pack({
        "v": 1, "kind": "call", "function": function,
        "event": {"name": "probe/look", "data": data or {}},
        "steps": {}, "run": {"id": "run-1", "attempt": 0}, "target": None,
    })


@pytest.fixture
def probe_app(tmp_path: Path) -> Target:
    (tmp_path / "app.py").write_text(PROBE_APP)
    return Target("python", str(tmp_path), env={"GREETING": "hi"})


async def test_the_shop_example_introspects_and_runs_a_step(wasm_sandbox: WasmSandbox) -> None:
    shop = Target("python", str(fx.SHOP))
    await wasm_sandbox.prepare(shop)
    result = await wasm_sandbox.run(shop, protocol.pack({"v": 1, "kind": "introspect"}), Limits())
    assert result.ok, result.stderr.decode()
    app = protocol.decode_introspection(result.stdout)
    assert app["app"] == "shop"
    assert {fn["id"] for fn in app["functions"]} >= {"process-order", "send-receipt"}

    request = protocol.pack({
        "v": 1, "kind": "call", "function": "process-order",
        "event": {"name": "shop/order.created", "data": {"id": 7, "total": 150}},
        "steps": {}, "run": {"id": "run-1", "attempt": 0}, "target": None,
    })
    result = await wasm_sandbox.run(shop, request, Limits())
    assert result.ok, result.stderr.decode()
    (op,) = protocol.decode_response(result.stdout)["ops"]
    assert op["op"] == "step" and op["name"] == "validate"
    assert op["id"] == protocol.step_id("validate")
    assert op["data"]["order_id"] == 7
    assert b"processing order 7" in result.stderr  # ctx.log goes to the step's logs


async def test_a_python_guest_sees_only_its_own_read_only_files_and_declared_env(
    wasm_sandbox: WasmSandbox, probe_app: Target
) -> None:
    result = await wasm_sandbox.run(probe_app, call("look-around", {"n": 1}), Limits())
    assert result.ok, result.stderr.decode()
    (op,) = protocol.decode_response(result.stdout)["ops"]
    seen = op["data"]
    assert seen["passwd"] in ("PermissionError", "FileNotFoundError")  # the host's files are not there
    assert seen["own_source"] is True
    assert seen["write_app"] == "PermissionError"  # the app dir is read-only
    assert seen["write_tmp"] in ("PermissionError", "FileNotFoundError")
    assert seen["root"] == "PermissionError"
    assert seen["env"] == {
        "GREETING": "hi", "PYTHONHOME": "/usr/local", "PYTHONPATH": "/opt/sluice",
        "MSGPACK_PUREPYTHON": "1", "PYTHONDONTWRITEBYTECODE": "1",
    }
    assert seen["echo"] == {"n": 1}
    assert b"loading the probe app" in result.stderr
    assert not (Path(probe_app.ref) / "new.txt").exists()


async def test_a_spinning_python_function_times_out(wasm_sandbox: WasmSandbox, probe_app: Target) -> None:
    started = time.monotonic()
    result = await wasm_sandbox.run(probe_app, call("spin"), Limits(timeout_s=1.0))
    assert time.monotonic() - started < 2.0
    assert result.timed_out and result.error == "timed out after 1 s"


async def test_a_python_memory_hog_gets_no_more_than_its_limit(
    wasm_sandbox: WasmSandbox, probe_app: Target
) -> None:
    # 128 MiB: the shim reads stdin with read(64 MiB + 1), which allocates that much at once.
    result = await wasm_sandbox.run(probe_app, call("hog"), Limits(memory_mb=128))
    if result.ok:  # the SDK caught the MemoryError and reported it as the function's error
        (op,) = protocol.decode_response(result.stdout)["ops"]
        assert op["op"] == "error" and op["error"]["name"] == "MemoryError"
    else:  # the interpreter itself could not go on
        assert result.error is not None and result.error.startswith("out of memory (limit 128 MiB)")


async def test_garbage_in_is_the_shims_exit_code_2(wasm_sandbox: WasmSandbox, probe_app: Target) -> None:
    result = await wasm_sandbox.run(probe_app, b"\xc1garbage", Limits())
    assert not result.ok and result.exit_code == 2 and result.error == "exited with code 2"
    assert result.stdout == b""


async def test_an_interpreter_given_too_little_memory_is_reported_as_out_of_memory(
    wasm_sandbox: WasmSandbox, probe_app: Target
) -> None:
    result = await wasm_sandbox.run(probe_app, call("look-around"), Limits(memory_mb=4))
    assert not result.ok and result.error is not None
    assert result.error.startswith("out of memory (limit 4 MiB)"), result.error
