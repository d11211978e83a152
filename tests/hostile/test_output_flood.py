"""Output floods of many megabytes: on the response channel itself (found by the guest,
around the shim), on stderr, through ``print``; and (WASM) a module writing fd 1 or 2
forever. Each stops at its cap, not at the timeout, and keeps no more than the cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.base import Result, SandboxError, Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx
from tests.sandboxes.wasm_fixtures import write_forever

flood_app = fx.app_fixture("flood", '''
CHUNK = b"\\x01" * 65536
TOTAL = 64 << 20  # many times the caps


@app.function(id="flood-response-channel")
def flood_response_channel(ctx):
    def flood():
        fds = protocol_fds()
        for _ in range(TOTAL // len(CHUNK)):
            for fd in fds:
                os.write(fd, CHUNK)
        return "flooded"

    return ctx.step.run("flood", flood)


@app.function(id="flood-stderr")
def flood_stderr(ctx):
    def flood():
        for _ in range(TOTAL // len(CHUNK)):
            sys.stderr.buffer.write(CHUNK)
        return "flooded"

    return ctx.step.run("flood", flood)


@app.function(id="flood-print")
def flood_print(ctx):
    def flood():
        line = "x" * 65535
        for _ in range(TOTAL // 65536):
            print(line)
        return "flooded"

    return ctx.step.run("flood", flood)
''')


def capped(guest: fx.Guest, result: Result | SandboxError, stream: str) -> None:
    outcome = guest.note(fx.failure(result))
    assert isinstance(result, Result) and not result.timed_out, outcome
    assert outcome == f"{stream} exceeded {fx.ATTACK.max_stdout_bytes} bytes", outcome
    assert len(result.stdout) <= fx.ATTACK.max_stdout_bytes and len(result.stderr) <= fx.ATTACK.max_stderr_bytes


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
@pytest.mark.parametrize(("function", "stream"), [
    ("flood-response-channel", "stdout"), ("flood-stderr", "stderr"), ("flood-print", "stderr"),
])
async def test_an_output_flood_stops_at_its_cap(guest: fx.Guest, flood_app: Target, function: str, stream: str) -> None:
    capped(guest, await fx.attack(guest, flood_app, call(function)), stream)


@pytest.mark.parametrize("guest", fx.MODULE_KINDS, indirect=True)
@pytest.mark.parametrize(("fd", "stream"), [(1, "stdout"), (2, "stderr")])
async def test_a_module_flooding_its_output_stops_at_its_cap(
    guest: fx.Guest, tmp_path: Path, fd: int, stream: str
) -> None:
    capped(guest, await fx.attack(guest, fx.module_target(tmp_path, "flood", write_forever(fd)), b""), stream)
