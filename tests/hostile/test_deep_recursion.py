"""Deep recursion: past any recursion limit the guest sets itself (a native stack overflow),
a step returning a structure nested too deep to encode, and (WASM) a function calling
itself forever."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.base import Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

recursion_app = fx.app_fixture("recursion", '''
@app.function(id="overflow")
def overflow(ctx):
    def dive(n):
        return dive(n + 1) + 1

    def go():
        sys.setrecursionlimit(10**8)  # nothing but the native stack is left to stop it
        return dive(0)

    return ctx.step.run("dive", go)


@app.function(id="deep-output")
def deep_output(ctx):
    def nest():
        value = None
        for _ in range(100_000):
            value = [value]
        return value

    return ctx.step.run("nest", nest)
''')

RECURSE = '(module (func $dive (call $dive)) (func (export "_start") (call $dive)))'


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_recursion_past_the_native_stack_fails_only_the_guest(guest: fx.Guest, recursion_app: Target) -> None:
    result = await fx.attack(guest, recursion_app, call("overflow"), fx.TIMED)
    outcome = guest.note(fx.failure(result))
    fx.stopped_in_time(result)
    # CPython 3.11 keeps Python frames on the heap: the memory limit usually comes first. Else
    # the native stack: SIGSEGV (exit 139) in a container, a stack-overflow trap under WASM.
    # Under WASM the frames may also just take longer than the timeout to fill memory.
    timed_out = f"timed out after {fx.TIMED.timeout_s:g} s"
    # gVisor kills a guest at its memory limit without Docker seeing an OOM kill: SIGKILL (137).
    killed = ("exited with code 137",) if guest.kind == "docker-runsc" else ()
    assert outcome in ("exited with code 139", "wasm trap: stack overflow", timed_out, *killed) or (
        outcome.startswith(("RecursionError", "MemoryError", "out of memory"))
    ), outcome


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_a_step_output_nested_too_deep_to_encode_is_the_steps_error(
    guest: fx.Guest, recursion_app: Target
) -> None:
    result = await fx.attack(guest, recursion_app, call("deep-output"))
    outcome = guest.note(fx.failure(result))
    assert outcome.startswith("UnencodableOutput"), outcome


@pytest.mark.parametrize("guest", fx.MODULE_KINDS, indirect=True)
async def test_a_module_recursing_forever_traps_on_stack_overflow(guest: fx.Guest, tmp_path: Path) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "recurse", RECURSE), b"")
    assert guest.note(fx.failure(result)) == "wasm trap: stack overflow"
