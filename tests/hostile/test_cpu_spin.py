"""CPU spin past the timeout: in the interpreter, inside one C call that never yields, in
every process a guest can make, and (WASM) in a module's start function."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.base import Result, SandboxError, Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

spin_app = fx.app_fixture("spin", '''
import itertools


@app.function(id="spin")
def spin(ctx):
    def forever():
        while True:
            pass

    return ctx.step.run("spin", forever)


@app.function(id="spin-in-c")
def spin_in_c(ctx):
    # One C call that never returns to the eval loop: no Python signal handler ever runs.
    return ctx.step.run("spin", lambda: sum(itertools.repeat(1)))


@app.function(id="spin-everywhere")
def spin_everywhere(ctx):
    def forever():
        for _ in range(3):  # 8 spinning processes where fork exists; one elsewhere
            if hasattr(os, "fork"):
                os.fork()
        while True:
            pass

    return ctx.step.run("spin", forever)
''')

SPIN = '(module (func (export "_start") (loop $l (br $l))))'
#: Spins in the start function, which runs while the module is instantiated, before ``_start``.
SPIN_AT_START = '(module (func $spin (loop $l (br $l))) (start $spin) (func (export "_start")))'


def timed_out(guest: fx.Guest, result: Result | SandboxError) -> None:
    guest.note(fx.failure(result))
    assert isinstance(result, Result) and result.timed_out, result
    assert result.error == f"timed out after {fx.TIMED.timeout_s:g} s" and not result.ok
    fx.stopped_in_time(result)


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
@pytest.mark.parametrize("function", ["spin", "spin-in-c", "spin-everywhere"])
async def test_a_spinning_guest_is_stopped_at_its_timeout(
    guest: fx.Guest, spin_app: Target, function: str
) -> None:
    if function == "spin-everywhere":
        fx.known_bug(guest, ("docker-runsc",), fx.RUNSC_PIDS_BUG)
    result = await fx.attack(guest, spin_app, call(function), fx.TIMED)
    timed_out(guest, result)


@pytest.mark.parametrize("guest", fx.MODULE_KINDS, indirect=True)
@pytest.mark.parametrize("wat", [SPIN, SPIN_AT_START], ids=["in-_start", "in-the-start-section"])
async def test_a_spinning_module_is_stopped_at_its_timeout(guest: fx.Guest, tmp_path: Path, wat: str) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "spin", wat), b"", fx.TIMED)
    timed_out(guest, result)
