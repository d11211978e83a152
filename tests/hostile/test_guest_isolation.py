"""Guests cannot see each other: a guest cannot find what another one, running at the same
time, keeps in its ``/tmp`` or its processes; and a later call of the same function is
not served by a guest an earlier call tampered with (files, a patched SDK)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace

import pytest

from sandboxes.base import Target
from tests.conformance.sandbox import call, step_op
from tests.hostile import fixtures as fx

isolation_app = fx.app_fixture("isolation", '''
import time


@app.function(id="stash")
def stash(ctx):
    def keep():
        name = ctx.event.data["marker"]
        try:
            with open(f"/tmp/{name}", "w") as f:
                f.write(name)
        except OSError as exc:
            kept = f"{type(exc).__name__}"
        else:
            kept = "kept"
        time.sleep(ctx.event.data["hold_s"])  # held while the snoop looks
        return kept

    return ctx.step.run("stash", keep)


@app.function(id="snoop")
def snoop(ctx):
    name = ctx.event.data["marker"]

    def in_tmp():
        if name in os.listdir("/tmp"):
            return "listed"
        raise FileNotFoundError("not in /tmp")

    def read_it():
        return open(f"/tmp/{name}").read()

    def via_other_processes():
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) != os.getpid():
                for where in (f"/proc/{pid}/root/tmp/{name}", f"/proc/{pid}/cwd/{name}"):
                    if os.path.exists(where):
                        return where
        raise FileNotFoundError("no other process shows it")

    def in_command_lines():
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if name.encode() in f.read():
                        return pid
        raise FileNotFoundError("in no command line")

    return ctx.step.run("snoop", lambda: probe({
        "tmp_listing": in_tmp, "tmp_read": read_it,
        "other_processes": via_other_processes, "command_lines": in_command_lines,
    }))


@app.function(id="tamper")
def tamper(ctx):
    import sluice._app as sdk

    def poisoned(*args, **kwargs):
        return b"\\xc1 every later answer is this"

    for name in ("encode_ops", "encode_op", "error_response"):
        if hasattr(sdk, name):
            setattr(sdk, name, poisoned)  # for every later call this process serves
    raise RuntimeError("tampered with the SDK, then failed")
''')

HOLD = replace(fx.ATTACK, timeout_s=10)


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_a_guest_cannot_see_another_guests_tmp_or_processes_at_the_same_time(
    guest: fx.Guest, isolation_app: Target
) -> None:
    marker = f"marker-{secrets.token_hex(8)}"
    await guest.sandbox.prepare(isolation_app)
    victim = asyncio.create_task(guest.sandbox.run(isolation_app, call("stash", {"marker": marker, "hold_s": 3}), HOLD))
    await asyncio.sleep(1.0)  # the victim has written its file and holds it
    assert not victim.done()
    fx.refused(guest, await fx.attack(guest, isolation_app, call("snoop", {"marker": marker})))
    kept = step_op(await victim)["data"]
    assert kept in ("kept", "PermissionError")  # no writable /tmp under WASM


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_a_later_call_does_not_find_an_earlier_calls_files(guest: fx.Guest, isolation_app: Target) -> None:
    marker = f"marker-{secrets.token_hex(8)}"
    step_op(await guest.sandbox.run(isolation_app, call("stash", {"marker": marker, "hold_s": 0}), fx.NORMAL))
    fx.refused(guest, await fx.attack(guest, isolation_app, call("snoop", {"marker": marker})))
    await fx.assert_no_residue(guest, isolation_app)


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_a_guest_that_patches_its_sdk_poisons_no_later_call(guest: fx.Guest, isolation_app: Target) -> None:
    outcome = guest.note(fx.failure(await fx.attack(guest, isolation_app, call("tamper"))))
    assert outcome.startswith("RuntimeError: tampered"), outcome
    answers = [op["data"] for op in await fx.sweep(guest, isolation_app, "normal")]
    assert answers == [{"n": n + 1} for n in range(fx.SWEEP)]
