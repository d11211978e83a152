"""Memory bombs: growing and keeping everything, one huge allocation at once, and (WASM)
``memory.grow`` page by page and a table grown to a hundred million entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.base import Result, Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

memory_app = fx.app_fixture("memory", '''
HOARD = []  # module-level: what the bomb takes stays taken while the SDK reports


@app.function(id="hoard")
def hoard(ctx):
    def grab():
        while True:
            HOARD.append(b"\\x01" * (1 << 20))  # written, so the pages are really used

    return ctx.step.run("hoard", grab)


@app.function(id="one-huge")
def one_huge(ctx):
    return ctx.step.run("huge", lambda: len(b"\\x01" * (1 << 30)))
''')

GROW_PAGE_BY_PAGE = """(module (memory (export "memory") 1)
  (func (export "_start") (local $page i32)
    (loop $more
      (local.set $page (memory.grow (i32.const 1)))
      (if (i32.eq (local.get $page) (i32.const -1)) (then unreachable))
      (i32.store (i32.mul (local.get $page) (i32.const 65536)) (i32.const 1))  ;; touch it
      (br $more))))
"""

GROW_TABLE = """(module (table $t 1 funcref) (memory (export "memory") 1)
  (func (export "_start")
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 100000000)) (i32.const -1))
      (then unreachable))))
"""


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
@pytest.mark.parametrize("function", ["hoard", "one-huge"])
async def test_a_memory_bomb_fails_at_the_memory_limit(guest: fx.Guest, memory_app: Target, function: str) -> None:
    result = await fx.attack(guest, memory_app, call(function))
    outcome = guest.note(fx.failure(result))
    assert isinstance(result, Result) and not result.timed_out, outcome
    # Out of memory, as the sandbox sees it; or a MemoryError the SDK reports as the step's error.
    assert outcome.startswith(f"out of memory (limit {fx.ATTACK.memory_mb} MiB)") or outcome.startswith(
        "MemoryError"
    ), outcome


@pytest.mark.parametrize("guest", fx.MODULE_KINDS, indirect=True)
async def test_a_module_growing_memory_page_by_page_fails_at_the_memory_limit(
    guest: fx.Guest, tmp_path: Path
) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "grow", GROW_PAGE_BY_PAGE), b"")
    outcome = guest.note(fx.failure(result))
    assert outcome == f"out of memory (limit {fx.ATTACK.memory_mb} MiB): wasm trap: unreachable instruction executed"


@pytest.mark.parametrize("guest", fx.MODULE_KINDS, indirect=True)
async def test_a_module_growing_a_huge_table_is_refused(guest: fx.Guest, tmp_path: Path) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "table", GROW_TABLE), b"")
    outcome = guest.note(fx.failure(result))
    assert isinstance(result, Result) and not result.timed_out
    assert "wasm trap" in outcome or "table" in outcome, outcome
