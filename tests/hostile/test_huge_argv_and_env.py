"""Huge argv and environment: a guest starting a program with a 256 KiB argument, a 256 KiB
variable or half a million arguments; and a target whose declared environment is huge
(one 1 MiB value, or 20,000 variables)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sandboxes.base import Result, SandboxError, Target
from tests.conformance.sandbox import call, step_op
from tests.hostile import fixtures as fx

argv_app = fx.app_fixture("argv", '''
import subprocess


def run(argv, env=None):
    return subprocess.run(argv, env=env, capture_output=True, check=False).returncode


@app.function(id="exec-huge")
def exec_huge(ctx):
    big = "x" * (256 << 10)
    return ctx.step.run("exec", lambda: probe({
        "one_huge_argument": lambda: run(["/bin/true", big]),
        "one_huge_variable": lambda: run(["/bin/true"], env={"BIG": big}),
        "half_a_million_arguments": lambda: run(["/bin/true"] + ["x"] * 500_000),
    }))
''')

HUGE_ENVS = {
    "one-1-mib-value": {"SLUICE_BIG": "x" * (1 << 20)},
    "20000-variables": {f"SLUICE_V{i}": "x" for i in range(20_000)},
}


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_a_guest_starting_a_program_with_huge_argv_or_env_is_refused(guest: fx.Guest, argv_app: Target) -> None:
    result = await fx.attack(guest, argv_app, call("exec-huge"))
    if isinstance(result, Result) and not result.ok:  # gVisor: half a million arguments take the memory first
        outcome = guest.note(fx.failure(result))
        assert outcome == f"out of memory (limit {fx.ATTACK.memory_mb} MiB)", outcome
        return
    refused = fx.refused(guest, result)
    if guest.is_docker:  # E2BIG from execve; under WASM there is no subprocess at all
        assert all(error.startswith("OSError: [Errno 7]") for error in refused.values()), refused


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
@pytest.mark.parametrize("env", list(HUGE_ENVS))
@pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning")  # see LARGE_BODY_BUG
async def test_a_target_with_a_huge_environment_fails_clearly_or_runs(
    guest: fx.Guest, argv_app: Target, env: str
) -> None:
    """Not every sandbox must refuse it (WASI hands the guest any environment), but none may
    hang, crash or leave anything behind, and a refusal must say what was wrong."""
    target = replace(argv_app, env=HUGE_ENVS[env])
    result = await fx.attack(guest, target, call("normal", {"n": 1}), normal=argv_app)
    if isinstance(result, Result) and result.ok:
        assert step_op(result)["data"] == {"n": 2}
        guest.note("ran: the guest got its environment")
        return
    outcome = guest.note(fx.failure(result))
    assert isinstance(result, SandboxError) or not result.timed_out, outcome
    assert "argument list too long" in outcome or "environment" in outcome, outcome
