"""What only a raw module can try: imports that do not exist or lie about their types, a
module that is not a WASI command, and wild arguments to the host's own functions
(pointers past memory, lengths of billions, flags out of range)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.base import Result, SandboxError
from tests.hostile import fixtures as fx

pytestmark = pytest.mark.parametrize("guest", fx.MODULE_KINDS, indirect=True)

_P1 = 'import "wasi_snapshot_preview1"'
MISSING_IMPORT = '(module (import "env" "escape_to_host" (func)) (func (export "_start")))'
LYING_IMPORT = f'(module ({_P1} "fd_write" (func (param i32))) (func (export "_start")))'
NOT_A_COMMAND = '(module (memory (export "memory") 1) (func (export "run")))'

#: Sluice's own host functions (the WASI calls it implements in Python: fd_write, poll_oneoff,
#: clock_time_get) get pointers past memory and absurd lengths: every one must answer with an
#: errno, not a crash or the host's memory. Exits 13 if all refused, 1 if one succeeded.
#: (wasmtime's own WASI calls trap on such pointers instead: the guest fails alone.)
WILD_ARGUMENTS = f"""(module
  ({_P1} "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ({_P1} "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  ({_P1} "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  ({_P1} "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func $refused (param $errno i32)
    (if (i32.eqz (local.get $errno)) (then (call $proc_exit (i32.const 1)))))
  (func (export "_start")
    ;; an iovec pointing past the end of memory
    (i32.store (i32.const 0) (i32.const 0x7ffffff0))
    (i32.store (i32.const 4) (i32.const 4096))
    (call $refused (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    ;; two billion iovecs
    (call $refused (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0x7fffffff) (i32.const 16)))
    ;; the iovec array itself past memory
    (call $refused (call $fd_write (i32.const 2) (i32.const 0x7ffffff0) (i32.const 1) (i32.const 16)))
    ;; nwritten past memory
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 1))
    (call $refused (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 0x7ffffffc)))
    ;; two billion subscriptions, and subscriptions past memory
    (call $refused (call $poll (i32.const 0) (i32.const 1024) (i32.const 0x7fffffff) (i32.const 16)))
    (call $refused (call $poll (i32.const 0x7fffff00) (i32.const 1024) (i32.const 1) (i32.const 16)))
    ;; a clock that does not exist, a clock answer past memory
    (call $refused (call $clock (i32.const 99) (i64.const 0) (i32.const 0)))
    (call $refused (call $clock (i32.const 0) (i64.const 0) (i32.const 0x7ffffffc)))
    (call $proc_exit (i32.const 13))))
"""

#: ``clock_time_get`` told to write its answer at 0xfffffff8, past the end of a 64 KiB memory:
#: exits 77 if the host wrote it into the guest's last 8 bytes instead, else 100 + errno.
HIGH_POINTER = f"""(module
  ({_P1} "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  ({_P1} "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $errno i32)
    (i64.store (i32.const 65528) (i64.const 42))
    (local.set $errno (call $clock (i32.const 0) (i64.const 0) (i32.const 0xfffffff8)))
    (if (i64.ne (i64.load (i32.const 65528)) (i64.const 42)) (then (call $proc_exit (i32.const 77))))
    (call $proc_exit (i32.add (i32.const 100) (local.get $errno)))))
"""

#: ``path_open`` with rights no WASI version defines: wasmtime traps instead of answering an
#: errno (as it does for ``fd_read`` into memory that is not there): the guest fails alone.
BAD_RIGHTS = f"""(module
  ({_P1} "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "x")
  (func (export "_start")
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 0)
                      (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 200)))))
"""


async def test_a_module_importing_what_does_not_exist_is_refused_before_it_runs(
    guest: fx.Guest, tmp_path: Path
) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "missing", MISSING_IMPORT), b"")
    assert isinstance(result, SandboxError), result
    outcome = guest.note(fx.failure(result))
    assert "cannot link" in outcome and "escape_to_host" in outcome, outcome


async def test_a_module_importing_a_wasi_function_with_the_wrong_type_is_refused(
    guest: fx.Guest, tmp_path: Path
) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "lying", LYING_IMPORT), b"")
    assert isinstance(result, SandboxError), result
    outcome = guest.note(fx.failure(result))
    assert "cannot link" in outcome and "fd_write" in outcome, outcome


async def test_a_module_that_is_not_a_wasi_command_fails_clearly(guest: fx.Guest, tmp_path: Path) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "reactor", NOT_A_COMMAND), b"")
    assert guest.note(fx.failure(result)) == "not a WASI command: no _start export"


async def test_wild_arguments_to_host_calls_get_errnos_not_host_memory(guest: fx.Guest, tmp_path: Path) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "wild", WILD_ARGUMENTS), b"")
    assert isinstance(result, Result)
    assert guest.note(fx.failure(result)) == "exited with code 13"  # every call answered with an errno


async def test_a_pointer_past_2_gib_is_out_of_bounds_not_counted_from_the_end(
    guest: fx.Guest, tmp_path: Path
) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "high-pointer", HIGH_POINTER), b"")
    assert guest.note(fx.failure(result)) == "exited with code 121"  # 100 + EFAULT


async def test_a_trap_in_wasi_itself_is_reported_with_its_cause(guest: fx.Guest, tmp_path: Path) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "bad-rights", BAD_RIGHTS), b"")
    outcome = guest.note(fx.failure(result))
    assert "path_open" in outcome or "conversion" in outcome, outcome
