"""A guest that ignores SIGTERM, SIGINT and SIGHUP, alone or with a daemon child in a new
session, is still killed at its timeout, and no process of it survives."""

from __future__ import annotations

import pytest

from sandboxes.base import Result, Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

stubborn_app = fx.app_fixture("stubborn", '''
import signal
import time


def deaf():
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (OSError, ValueError, AttributeError):
            pass  # no such signal here


@app.function(id="stubborn")
def stubborn(ctx):
    def forever():
        deaf()
        while True:
            pass

    return ctx.step.run("stubborn", forever)


@app.function(id="stubborn-daemon")
def stubborn_daemon(ctx):
    def forever():
        deaf()
        if hasattr(os, "fork") and os.fork() == 0:
            os.setsid()  # a new session: no longer in the call's process group
            if os.fork() == 0:  # and reparented away from the shim
                deaf()
                while True:
                    time.sleep(0.05)
            os._exit(0)
        while True:
            time.sleep(0.05)

    return ctx.step.run("stubborn", forever)
''')


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
@pytest.mark.parametrize("function", ["stubborn", "stubborn-daemon"])
async def test_a_guest_ignoring_sigterm_is_killed_at_its_timeout(
    guest: fx.Guest, stubborn_app: Target, function: str
) -> None:
    result = await fx.attack(guest, stubborn_app, call(function), fx.TIMED)
    assert isinstance(result, Result) and result.timed_out, result
    fx.stopped_in_time(result)
    guest.note(fx.failure(result))
    await fx.assert_no_residue(guest, stubborn_app)  # the daemon died with its guest
