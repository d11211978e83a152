"""A fork bomb and a thread bomb: the guest's own fork or thread start fails at the pids
cap (or does not exist, under WASM); the bomb's processes do not outlive the call."""

from __future__ import annotations

import pytest

from sandboxes.base import Result, Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

bomb_app = fx.app_fixture("bombs", '''
import threading
import time


@app.function(id="fork-bomb")
def fork_bomb(ctx):
    def bomb():
        while True:
            if os.fork() == 0:  # AttributeError where there is no fork
                while True:  # every child keeps trying too, and never returns into the SDK
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.01)

    return ctx.step.run("bomb", bomb)


@app.function(id="thread-bomb")
def thread_bomb(ctx):
    def bomb():
        started = 0
        while started < 100_000:
            threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
            started += 1
        return started

    return ctx.step.run("bomb", bomb)
''')


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_a_fork_bomb_fails_at_the_pids_cap_and_leaves_no_process(guest: fx.Guest, bomb_app: Target) -> None:
    fx.known_bug(guest, ("docker-runsc",), fx.RUNSC_PIDS_BUG)
    result = await fx.attack(guest, bomb_app, call("fork-bomb"))
    outcome = guest.note(fx.failure(result))
    assert isinstance(result, Result), outcome
    if guest.is_docker:
        assert outcome.startswith("BlockingIOError: [Errno 11]"), outcome  # EAGAIN: the pids cap
    else:
        assert outcome.startswith("AttributeError"), outcome  # WASI has no fork
    await fx.assert_no_residue(guest, bomb_app)


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_a_thread_bomb_fails_at_the_pids_cap_and_leaves_no_thread(guest: fx.Guest, bomb_app: Target) -> None:
    result = await fx.attack(guest, bomb_app, call("thread-bomb"), fx.TIMED)
    outcome = guest.note(fx.failure(result))
    # gVisor's threads cost memory and time: there the memory limit or the timeout comes first.
    gvisor_first = (f"out of memory (limit {fx.ATTACK.memory_mb} MiB)", f"timed out after {fx.TIMED.timeout_s:g} s")
    assert outcome.startswith("RuntimeError: can't start new thread") or (
        guest.kind == "docker-runsc" and outcome in gvisor_first
    ), outcome
    await fx.assert_no_residue(guest, bomb_app)
