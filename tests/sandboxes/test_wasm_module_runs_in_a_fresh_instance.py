"""A WASI module gets the request on stdin, answers on stdout, and keeps nothing between calls."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import wasmtime

from sandboxes import open_sandbox
from sandboxes.base import Limits, Sandbox, SandboxError, Target
from sandboxes.wasm import WasmSandbox
from tests.sandboxes import wasm_fixtures as fx

wasm_cache, wasm_sandbox = fx.wasm_cache, fx.wasm_sandbox

COUNTER = f"""(module {fx.FD_WRITE}
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 48))
  (func (export "_start")
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 100) (global.get $calls))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 1))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


async def test_a_module_echoes_its_request_from_stdin_to_stdout(
    wasm_sandbox: WasmSandbox, tmp_path: Path
) -> None:
    request = bytes(range(256)) * 1000  # 256,000 bytes: several reads and writes
    result = await wasm_sandbox.run(fx.wat_target(tmp_path, fx.ECHO), request, Limits())
    assert result.ok, result.error
    assert result.stdout == request
    assert result.exit_code == 0 and result.error is None and not result.timed_out
    assert result.duration_ms > 0


async def test_every_call_gets_a_fresh_instance(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    target = fx.wat_target(tmp_path, COUNTER)
    outputs = [(await wasm_sandbox.run(target, b"", Limits())).stdout for _ in range(3)]
    assert outputs == [b"1", b"1", b"1"]  # the global starts over every time


async def test_the_driver_is_found_by_name_and_meets_the_protocol(wasm_cache: Path) -> None:
    sandbox = open_sandbox("wasm", cache_dir=wasm_cache)
    assert isinstance(sandbox, Sandbox) and sandbox.name == "wasm"
    await sandbox.close()
    await sandbox.close()  # twice is fine


async def test_bad_targets_are_refused_with_a_clear_error(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="runs modules and python apps, not container images"):
        await wasm_sandbox.prepare(Target("image", "alpine:3"))
    with pytest.raises(SandboxError, match="does not exist"):
        await wasm_sandbox.prepare(Target("module", str(tmp_path / "missing.wasm")))
    with pytest.raises(SandboxError, match="does not compile"):
        await wasm_sandbox.prepare(fx.wat_target(tmp_path, "(module (func $f (result i32)))", "bad.wat"))
    with pytest.raises(SandboxError, match=r"has no app\.py"):
        await wasm_sandbox.prepare(Target("python", str(tmp_path)))


async def test_a_module_importing_more_than_wasi_cannot_be_linked(
    wasm_sandbox: WasmSandbox, tmp_path: Path
) -> None:
    target = fx.wat_target(tmp_path, '(module (import "env" "spawn" (func)) (func (export "_start")))')
    with pytest.raises(SandboxError, match="cannot link"):
        await wasm_sandbox.prepare(target)


async def test_a_module_without_start_fails_only_itself(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    result = await wasm_sandbox.run(fx.wat_target(tmp_path, "(module)"), b"", Limits())
    assert not result.ok and result.error == "not a WASI command: no _start export"


async def test_a_module_that_changes_on_disk_is_recompiled(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    target = fx.wat_target(tmp_path, COUNTER)
    assert (await wasm_sandbox.run(target, b"", Limits())).stdout == b"1"
    fx.wat_target(tmp_path, COUNTER.replace("i32.const 48", "i32.const 64"))  # same path, new code
    assert (await wasm_sandbox.run(target, b"", Limits())).stdout == b"A"


async def test_a_closed_sandbox_refuses_work(wasm_cache: Path, tmp_path: Path) -> None:
    sandbox = WasmSandbox(cache_dir=wasm_cache)
    await sandbox.close()
    with pytest.raises(SandboxError, match="closed"):
        await sandbox.run(fx.wat_target(tmp_path, fx.ECHO), b"x", Limits())


async def test_a_trapped_or_exited_guests_store_is_freed_at_once_not_at_the_next_gc(
    wasm_sandbox: WasmSandbox, tmp_path: Path
) -> None:
    # A store holds the guest's preopened directories and stdin: they must close with the call.
    trap = fx.wat_target(tmp_path, '(module (func (export "_start") unreachable))', "trap.wat")
    exit_3 = fx.wat_target(tmp_path, f'(module {fx.PROC_EXIT} (memory (export "memory") 1) '
                                     '(func (export "_start") (call $proc_exit (i32.const 3))))', "exit.wat")
    gc.collect()
    gc.disable()
    try:
        for target in (trap, exit_3):
            result = await wasm_sandbox.run(target, b"", Limits())
            assert not result.ok
            assert not [o for o in gc.get_objects() if isinstance(o, wasmtime.Store)]
    finally:
        gc.enable()
