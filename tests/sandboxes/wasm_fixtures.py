"""Fixtures for the WASM sandbox tests; test modules import them by name.

Not a conftest.py, because the Docker sandbox tests share this directory.

* ``wasm_cache`` (session): one cache dir for the whole run, so CPython for WASI is
  compiled once (about 3-5 s) and every later sandbox loads it from disk.
* ``wasm_sandbox``: a fresh :class:`WasmSandbox` on that cache, closed after the test.
* :func:`wat_target`: write WAT text to a file and return a ``module`` target for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandboxes.base import Target
from sandboxes.wasm import WasmSandbox

REPO = Path(__file__).resolve().parents[2]
POLYGLOT = REPO / "examples" / "wasm" / "polyglot.wat"
SHOP = REPO / "examples" / "shop"


@pytest.fixture(scope="session")
def wasm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wasm-cache")


@pytest.fixture
async def wasm_sandbox(wasm_cache: Path) -> AsyncIterator[WasmSandbox]:
    sandbox = WasmSandbox(cache_dir=wasm_cache)
    try:
        yield sandbox
    finally:
        await sandbox.close()


def wat_target(tmp_path: Path, text: str, name: str = "guest.wat", **env: str) -> Target:
    """A ``module`` target for WAT ``text`` saved as ``tmp_path/name``."""
    path = tmp_path / name
    path.write_text(text)
    return Target("module", str(path), env=env)


# WASI preview1 imports, for the WAT snippets in the tests.
_P1 = '(import "wasi_snapshot_preview1"'
FD_READ = f'{_P1} "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))'
FD_WRITE = f'{_P1} "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))'
PROC_EXIT = f'{_P1} "proc_exit" (func $proc_exit (param i32)))'

#: Copies stdin to stdout, 60,000 bytes at a time.
ECHO = f"""(module {FD_READ} {FD_WRITE}
  (memory (export "memory") 2)
  (func (export "_start") (local $n i32)
    (block $eof (loop $more
      (i32.store (i32.const 0) (i32.const 1024))
      (i32.store (i32.const 4) (i32.const 60000))
      (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
      (local.set $n (i32.load (i32.const 16)))
      (br_if $eof (i32.eqz (local.get $n)))
      (i32.store (i32.const 4) (local.get $n))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 20)))
      (br $more)))))
"""


def write_forever(fd: int) -> str:
    """WAT that writes 64 KiB to ``fd`` in a loop, ignoring errors."""
    return f"""(module {FD_WRITE}
  (memory (export "memory") 2)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $l (drop (call $fd_write (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 16))) (br $l))))
"""
