"""The host's own fd_write reads guest memory through raw pointers: bad ones are an errno, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.base import Limits
from sandboxes.wasm import WasmSandbox
from tests.sandboxes import wasm_fixtures as fx

wasm_cache, wasm_sandbox = fx.wasm_cache, fx.wasm_sandbox

EFAULT, EINVAL = 21, 28


def fd_write_exit(iov_at: int, ptr: int, length: int, iovs_len: int, nwritten_at: int) -> str:
    """WAT: store one iovec (ptr, length) at 0, call fd_write(1, iov_at, iovs_len, nwritten_at), exit with its errno."""
    return f"""(module {fx.FD_WRITE} {fx.PROC_EXIT}
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const {ptr}))
    (i32.store (i32.const 4) (i32.const {length}))
    (call $proc_exit
      (call $fd_write (i32.const 1) (i32.const {iov_at}) (i32.const {iovs_len}) (i32.const {nwritten_at})))))
"""


@pytest.mark.parametrize(("case", "args", "errno"), [
    ("iovec array past the end of memory", (65532, 0, 1, 1, 16), EFAULT),
    ("buffer past the end of memory", (0, 65000, 1000, 1, 16), EFAULT),
    ("buffer at a huge unsigned address", (0, -16, 32, 1, 16), EFAULT),
    ("nwritten past the end of memory", (0, 100, 1, 1, 65534), EFAULT),
    ("too many iovecs", (0, 100, 1, 5000, 16), EINVAL),
    ("a negative iovec count", (0, 100, 1, -1, 16), EINVAL),
])
async def test_a_bad_pointer_to_fd_write_is_an_errno_for_the_guest(
    wasm_sandbox: WasmSandbox, tmp_path: Path, case: str, args: tuple[int, ...], errno: int
) -> None:
    result = await wasm_sandbox.run(fx.wat_target(tmp_path, fd_write_exit(*args)), b"", Limits())
    assert result.exit_code == errno, (case, result.error)
    assert result.stdout == b""


async def test_a_module_without_exported_memory_cannot_write(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    # Without an exported memory wasmtime's own WASI calls (proc_exit too) trap, so the
    # errno is told by which trap follows: unreachable for EINVAL, a division by zero otherwise.
    wat = f"""(module {fx.FD_WRITE}
  (memory 1)
  (func (export "_start")
    (if (i32.eq (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)) (i32.const {EINVAL}))
      (then unreachable))
    (drop (i32.div_s (i32.const 1) (i32.const 0)))))
"""
    result = await wasm_sandbox.run(fx.wat_target(tmp_path, wat), b"", Limits())
    assert result.error == "wasm trap: unreachable instruction executed"


async def test_a_good_write_reports_its_byte_count(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    wat = f"""(module {fx.FD_WRITE} {fx.PROC_EXIT}
  (memory (export "memory") 1)
  (data (i32.const 100) "hello")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 5))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (call $proc_exit (i32.add (i32.const 100) (i32.load (i32.const 16))))))
"""
    result = await wasm_sandbox.run(fx.wat_target(tmp_path, wat), b"", Limits())
    assert result.stdout == b"hello" and result.exit_code == 105
