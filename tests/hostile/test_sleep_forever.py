"""Sleeping forever: in ``time.sleep``, in ``select`` with no timeout, on a lock nobody will
release, and (WASM) in ``poll_oneoff`` with a relative or an absolute clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.base import Result, SandboxError, Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

sleep_app = fx.app_fixture("sleep", '''
import select
import threading
import time


@app.function(id="sleep")
def sleep(ctx):
    return ctx.step.run("sleep", lambda: time.sleep(10**6))


@app.function(id="select-forever")
def select_forever(ctx):
    return ctx.step.run("select", lambda: select.select([], [], [], None))


@app.function(id="deadlock")
def deadlock(ctx):
    def forever():
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()

    return ctx.step.run("deadlock", forever)
''')

_POLL = '(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))'


def poll_forever(clock: int, flags: int, timeout: int) -> str:
    """WAT: one ``poll_oneoff`` on a clock that ends (nearly) never; exits 0 if it returns."""
    return f"""(module {_POLL}
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const 0) (i64.const 7))              ;; userdata
    (i32.store8 (i32.const 8) (i32.const 0))             ;; tag: clock
    (i32.store (i32.const 16) (i32.const {clock}))
    (i64.store (i32.const 24) (i64.const {timeout}))
    (i32.store16 (i32.const 40) (i32.const {flags}))
    (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))
"""


#: Relative, monotonic clock, 2^64-1 ns.
FOREVER_RELATIVE = poll_forever(clock=1, flags=0, timeout=-1)
#: Absolute, realtime clock, at the end of time (i64 max ns since the epoch: year 2262).
FOREVER_ABSOLUTE = poll_forever(clock=0, flags=1, timeout=2**63 - 1)


def stopped(guest: fx.Guest, result: Result | SandboxError) -> None:
    """A sleeper is stopped at its timeout, or fails at once where its way of sleeping does not exist."""
    outcome = guest.note(fx.failure(result))
    if fx.stopped_in_time(result).timed_out:
        assert outcome == f"timed out after {fx.TIMED.timeout_s:g} s"


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
@pytest.mark.parametrize("function", ["sleep", "select-forever", "deadlock"])
async def test_a_guest_sleeping_forever_is_stopped_at_its_timeout(
    guest: fx.Guest, sleep_app: Target, function: str
) -> None:
    result = await fx.attack(guest, sleep_app, call(function), fx.TIMED)
    stopped(guest, result)
    if function == "sleep":
        assert isinstance(result, Result) and result.timed_out


@pytest.mark.parametrize("guest", fx.MODULE_KINDS, indirect=True)
@pytest.mark.parametrize("wat", [FOREVER_RELATIVE, FOREVER_ABSOLUTE], ids=["relative", "absolute"])
async def test_a_module_sleeping_forever_in_poll_oneoff_is_woken_and_timed_out(
    guest: fx.Guest, tmp_path: Path, wat: str
) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "sleep", wat), b"", fx.TIMED)
    stopped(guest, result)
    assert isinstance(result, Result) and result.timed_out
