"""An app that opts in to reused guests gets a target saying so; others keep fresh guests."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.limits import RuntimeLimits
from runtime.registry import Registry, discover
from sandboxes.wasm import WasmSandbox
from tests.sandboxes import wasm_fixtures as fx

wasm_cache, wasm_sandbox = fx.wasm_cache, fx.wasm_sandbox

pytestmark = pytest.mark.slow  # CPython for WASI

APP = '''
import sluice

app = sluice.App("{name}"{extra})


@app.function(id="f", trigger="x/y")
def f(ctx):
    return 1
'''


async def test_only_the_app_that_opts_in_gets_a_reuse_target(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    for name, extra in (("keeps", ", reuse_instances=True"), ("fresh", "")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(APP.format(name=name, extra=extra))
    registry = Registry({"wasm": wasm_sandbox}, RuntimeLimits())
    found = {}
    for source in discover(tmp_path, "wasm"):
        for fn in await registry.introspect(source):
            found[fn.app] = fn.target
    assert found["keeps"].reuse and found["keeps"].kind == "python"
    assert not found["fresh"].reuse
