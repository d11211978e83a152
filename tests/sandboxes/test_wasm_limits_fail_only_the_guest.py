"""A guest that spins, sleeps, floods output, eats memory or exits badly fails alone, clearly."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sandboxes.base import Limits, MiB, SandboxError
from sandboxes.wasm import WasmSandbox
from tests.sandboxes import wasm_fixtures as fx

wasm_cache, wasm_sandbox = fx.wasm_cache, fx.wasm_sandbox

SPIN = '(module (func (export "_start") (loop $l (br $l))))'

SLEEP_100_S = """(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const 0) (i64.const 7))              ;; userdata
    (i32.store8 (i32.const 8) (i32.const 0))             ;; tag: clock
    (i32.store (i32.const 16) (i32.const 1))             ;; monotonic
    (i64.store (i32.const 24) (i64.const 100000000000))  ;; 100 s, relative
    (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))
"""

GROW_UNTIL_REFUSED = """(module (memory (export "memory") 1)
  (func (export "_start")
    (loop $l
      (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))
      (br $l))))
"""

EXIT_3 = f"""(module {fx.PROC_EXIT} (memory (export "memory") 1)
  (func (export "_start") (call $proc_exit (i32.const 3))))"""


async def test_a_spinning_guest_is_stopped_by_the_engine_at_its_deadline(
    wasm_sandbox: WasmSandbox, tmp_path: Path
) -> None:
    ticks = 0

    async def count_ticks() -> None:  # proves the event loop stays free meanwhile
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    counter = asyncio.create_task(count_ticks())
    started = time.monotonic()
    result = await wasm_sandbox.run(fx.wat_target(tmp_path, SPIN), b"", Limits(timeout_s=1.0))
    elapsed = time.monotonic() - started
    counter.cancel()
    assert not result.ok and result.timed_out
    assert result.error == "timed out after 1 s"
    assert result.exit_code is None
    assert 0.95 < elapsed < 1.5  # a loop with no host calls: only the engine could stop it
    assert ticks >= 10


async def test_a_guest_sleeping_past_its_deadline_is_woken_and_timed_out(
    wasm_sandbox: WasmSandbox, tmp_path: Path
) -> None:
    started = time.monotonic()
    result = await wasm_sandbox.run(fx.wat_target(tmp_path, SLEEP_100_S), b"", Limits(timeout_s=0.5))
    assert time.monotonic() - started < 1.5
    assert result.timed_out and result.error == "timed out after 0.5 s"


async def test_two_spinning_guests_run_at_the_same_time(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    target = fx.wat_target(tmp_path, SPIN)
    started = time.monotonic()
    results = await asyncio.gather(*(wasm_sandbox.run(target, b"", Limits(timeout_s=0.5)) for _ in range(2)))
    assert all(r.timed_out for r in results)
    assert time.monotonic() - started < 0.9  # not one after the other


async def test_memory_growth_past_the_limit_fails_as_out_of_memory(
    wasm_sandbox: WasmSandbox, tmp_path: Path
) -> None:
    result = await wasm_sandbox.run(fx.wat_target(tmp_path, GROW_UNTIL_REFUSED), b"", Limits(memory_mb=16))
    assert not result.ok
    assert result.error == "out of memory (limit 16 MiB): wasm trap: unreachable instruction executed"


async def test_a_module_needing_more_memory_than_allowed_does_not_start(
    wasm_sandbox: WasmSandbox, tmp_path: Path
) -> None:
    target = fx.wat_target(tmp_path, '(module (memory 512) (func (export "_start")))')  # 32 MiB
    result = await wasm_sandbox.run(target, b"", Limits(memory_mb=16))
    assert not result.ok and result.error is not None
    assert result.error.startswith("out of memory (limit 16 MiB)")


async def test_a_guest_whose_last_words_are_memory_error_is_out_of_memory(
    wasm_sandbox: WasmSandbox, tmp_path: Path
) -> None:
    # What CPython does when an allocation is refused and nothing catches it.
    dies = f"""(module {fx.FD_WRITE} {fx.PROC_EXIT}
      (memory (export "memory") 1)
      (data (i32.const 100) "Traceback (most recent call last):\\nMemoryError\\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 47))
        (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
        (call $proc_exit (i32.const 1))))"""
    result = await wasm_sandbox.run(fx.wat_target(tmp_path, dies), b"", Limits(memory_mb=64))
    assert result.stderr == b"Traceback (most recent call last):\nMemoryError\n"
    assert result.error == "out of memory (limit 64 MiB): exited with code 1" and result.exit_code == 1


async def test_a_stdout_flood_is_capped_and_stopped(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    started = time.monotonic()
    target = fx.wat_target(tmp_path, fx.write_forever(1))
    result = await wasm_sandbox.run(target, b"", Limits(max_stdout_bytes=MiB))
    assert time.monotonic() - started < 1.0  # stopped at the cap, not at the 300 s timeout
    assert not result.ok and result.error == f"stdout exceeded {MiB} bytes"
    assert len(result.stdout) == MiB and not result.timed_out


async def test_a_stderr_flood_is_capped_too(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    target = fx.wat_target(tmp_path, fx.write_forever(2))
    result = await wasm_sandbox.run(target, b"", Limits(max_stderr_bytes=1000))
    assert result.error == "stderr exceeded 1000 bytes" and len(result.stderr) == 1000


async def test_proc_exit_with_a_code_is_reported(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    result = await wasm_sandbox.run(fx.wat_target(tmp_path, EXIT_3), b"", Limits())
    assert not result.ok and result.exit_code == 3 and result.error == "exited with code 3"


async def test_a_trap_is_reported_in_a_few_words(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    divide_by_zero = '(module (func (export "_start") (drop (i32.div_u (i32.const 1) (i32.const 0)))))'
    target = fx.wat_target(tmp_path, divide_by_zero)
    result = await wasm_sandbox.run(target, b"", Limits())
    assert not result.ok and result.exit_code is None
    assert result.error == "wasm trap: integer divide by zero"


async def test_fuel_bounds_the_instructions_a_guest_may_run(wasm_cache: Path, tmp_path: Path) -> None:
    async with WasmSandbox(cache_dir=wasm_cache, fuel=1_000_000) as sandbox:
        result = await sandbox.run(fx.wat_target(tmp_path, SPIN), b"", Limits(timeout_s=10))
        assert result.error == "out of fuel (limit 1000000 units)" and not result.timed_out
        ok = await sandbox.run(fx.wat_target(tmp_path, fx.ECHO, "echo.wat"), b"hi", Limits())
        assert ok.ok and ok.stdout == b"hi"


async def test_a_cancelled_call_stops_its_guest(wasm_cache: Path, tmp_path: Path) -> None:
    sandbox = WasmSandbox(cache_dir=wasm_cache)
    task = asyncio.create_task(sandbox.run(fx.wat_target(tmp_path, SPIN), b"", Limits(timeout_s=60)))
    await asyncio.sleep(0.3)
    task.cancel()
    started = time.monotonic()
    await sandbox.close()  # waits for its worker threads: they are free again at once
    assert time.monotonic() - started < 1.0
    assert task.cancelled()


async def test_closing_the_sandbox_mid_run_stops_the_guest_and_says_so(wasm_cache: Path, tmp_path: Path) -> None:
    sandbox = WasmSandbox(cache_dir=wasm_cache)
    runs = [asyncio.create_task(sandbox.run(fx.wat_target(tmp_path, t, f"{i}.wat"), b"", Limits(timeout_s=60)))
            for i, t in enumerate((SPIN, SLEEP_100_S))]
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await sandbox.close()
    assert time.monotonic() - started < 1.0
    for run in runs:
        with pytest.raises(SandboxError, match="closed during the run"):
            await run


async def test_a_module_asking_for_a_huge_table_does_not_start(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    target = fx.wat_target(tmp_path, '(module (table 100000000 funcref) (func (export "_start")))')
    result = await wasm_sandbox.run(target, b"", Limits())
    assert not result.ok and result.error is not None and result.error.startswith("cannot start:"), result.error
