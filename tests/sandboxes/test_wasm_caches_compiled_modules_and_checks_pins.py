"""Compiled modules are cached on disk and reused; CPython for WASI is checked against its pins."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandboxes import _wasm_python
from sandboxes.base import Limits, SandboxError, Target
from sandboxes.wasm import WasmSandbox
from tests.sandboxes import wasm_fixtures as fx

wasm_cache, wasm_sandbox = fx.wasm_cache, fx.wasm_sandbox


async def test_a_second_sandbox_loads_the_compiled_module_from_disk(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    target = fx.wat_target(tmp_path, fx.ECHO)
    async with WasmSandbox(cache_dir=cache) as first:
        assert (await first.run(target, b"one", Limits())).stdout == b"one"
    (compiled,) = (cache / "modules").glob("*.cwasm")
    written = compiled.stat().st_mtime_ns
    assert cache.stat().st_mode & 0o077 == 0  # private: compiled code is loaded without checks

    async with WasmSandbox(cache_dir=cache) as second:
        assert (await second.run(target, b"two", Limits())).stdout == b"two"
    assert list((cache / "modules").glob("*.cwasm")) == [compiled]
    assert compiled.stat().st_mtime_ns == written  # read, not rewritten


async def test_a_corrupt_cache_entry_is_compiled_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    target = fx.wat_target(tmp_path, fx.ECHO)
    async with WasmSandbox(cache_dir=cache) as first:
        await first.prepare(target)
    (compiled,) = (cache / "modules").glob("*.cwasm")
    compiled.write_bytes(b"not a compiled module")
    async with WasmSandbox(cache_dir=cache) as second:
        assert (await second.run(target, b"ok", Limits())).stdout == b"ok"
    assert compiled.read_bytes() != b"not a compiled module"


@pytest.mark.slow
async def test_cpython_is_compiled_once_then_loaded_from_the_cache(wasm_cache: Path) -> None:
    shop = Target("python", str(fx.SHOP))
    async with WasmSandbox(cache_dir=wasm_cache) as first:
        await first.prepare(shop)  # compiles unless an earlier test did
    async with WasmSandbox(cache_dir=wasm_cache) as second:
        started = time.monotonic()
        await second.prepare(shop)
        assert time.monotonic() - started < 1.0  # a compile takes seconds; loading, milliseconds
    bundles = list((wasm_cache / "wasm-python").glob("bundle-*"))
    assert len(bundles) == 1
    assert (bundles[0] / "site" / "msgpack" / "fallback.py").is_file()
    assert not list(bundles[0].rglob("*.so"))  # pure-Python msgpack only


async def test_a_cpython_file_that_does_not_match_its_pin_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "app.py").write_text("import sluice\napp = sluice.App('x')\n")
    wrong = "0" * 64
    monkeypatch.setitem(_wasm_python.PINNED, _wasm_python.INTERPRETER, wrong)
    monkeypatch.setattr(_wasm_python, "_verified", {})
    async with WasmSandbox(cache_dir=tmp_path / "cache") as sandbox:
        with pytest.raises(SandboxError) as caught:
            await sandbox.prepare(Target("python", str(tmp_path)))
    message = str(caught.value)
    assert message.startswith("checksum mismatch for ") and "python-3.11.1.wasm" in message
    assert f"expected sha256 {wrong}" in message
    assert "got 88b0f02cc42b389ab14e8c1b9a57e7ea5ab75397c0859baf9265c5eac58d3437" in message
