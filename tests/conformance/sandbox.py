"""The sandbox conformance suite: the same Python app, the same cases, on every driver.

Collected through ``test_sandbox_conformance.py``. The ``sandbox`` fixture runs each case
on Docker under runc, Docker under gVisor (``runsc``; skipped when the engine does not
have it registered, which is optional even under CI) and WASM. Docker cases carry the
``docker`` mark: without an engine they skip on a laptop and fail under ``CI=true``.

The guest is a real ``sluice`` app (:data:`APP`) run by the real shim. Docker builds it
into an image named by the hash of its files, so the first Docker case of a session
builds it once and every later sandbox finds it; WASM compiles CPython once per session
into a shared cache dir.

Every case checks the whole contract of :class:`sandboxes.base.Result` it touches:
``ok``, ``error``, ``timed_out``, ``exit_code``, and what went to stdout or stderr.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sandboxes.base import Limits, MiB, Result, Sandbox, SandboxError, Target
from sandboxes.docker import DockerSandbox
from sandboxes.wasm import WasmSandbox
from sluice import protocol
from tests.sandboxes import docker_fixtures

APP = '''
import os
import sys

import sluice

app = sluice.App("conformance")
print("conformance app loaded")  # at import: the shim sends it to stderr

HOARD = []  # module-level, so what the bomb takes stays taken while the SDK reports


def attempt(fn):
    try:
        return fn()
    except Exception as exc:
        return type(exc).__name__


@app.function(id="double")
def double(ctx):
    return ctx.step.run("double", lambda: {"n": ctx.event.data["n"] * 2, "text": "h\\u00e9llo"})


@app.function(id="chatty")
def chatty(ctx):
    print("a print during the call")
    sys.stdout.write("a sys.stdout write\\n")
    return ctx.step.run("quiet", lambda: print("a print in a step") or "fine")


@app.function(id="spin")
def spin(ctx):
    def forever():
        while True:
            pass

    return ctx.step.run("spin", forever)


@app.function(id="exit-3")
def exit_3(ctx):
    sys.stderr.write("leaving with 3\\n")
    sys.stderr.flush()
    os._exit(3)


@app.function(id="big-answer")
def big_answer(ctx):
    return ctx.step.run("big", lambda: "x" * ctx.event.data["bytes"])


@app.function(id="fd-1-flood")
def fd_1_flood(ctx):
    chunk = b"x" * 65536
    while True:
        os.write(1, chunk)


@app.function(id="memory-bomb")
def memory_bomb(ctx):
    size = 1 << 20
    while True:  # take everything, in ever smaller pieces, and keep it
        try:
            HOARD.append(b"\\x01" * size)  # bytes are written, so the pages are really used
        except MemoryError:
            if size <= 64:
                raise
            size //= 16


@app.function(id="peek")
def peek(ctx):
    return ctx.step.run("peek", lambda: {
        "host_file": attempt(lambda: open(ctx.event.data["host_file"]).read()),
        "write_passwd": attempt(lambda: open("/etc/passwd", "a").write("intruder::0:0::/:/bin/sh\\n")),
        "read_passwd": attempt(lambda: "read" if open("/etc/passwd").read() else "empty"),
    })
'''

#: Ordinary calls: generous, since a gVisor container under ptrace starts slowly.
CALL = Limits(timeout_s=30)

DRIVERS = [
    pytest.param("docker-runc", marks=pytest.mark.docker, id="docker-runc"),
    pytest.param("docker-runsc", marks=pytest.mark.docker, id="docker-runsc"),
    pytest.param("wasm", id="wasm"),
]


# --- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def conformance_app(tmp_path_factory: pytest.TempPathFactory) -> Target:
    """The app above in a directory of its own, once per session (Docker builds it once)."""
    app_dir = tmp_path_factory.mktemp("conformance-app")
    (app_dir / "app.py").write_text(APP)
    return Target("python", str(app_dir))


@pytest.fixture(scope="session")
def conformance_wasm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache dir: CPython for WASI is compiled once (about 5 s), then loaded from disk."""
    return tmp_path_factory.mktemp("conformance-wasm-cache")


@pytest.fixture(params=DRIVERS)
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    """A fresh sandbox of each driver, closed after the case; Docker ones must leave no container."""
    if request.param == "wasm":
        async with WasmSandbox(cache_dir=request.getfixturevalue("conformance_wasm_cache")) as wasm:
            yield wasm
        return
    request.getfixturevalue("docker_engine")  # skips on a laptop without an engine, fails under CI
    runtime = request.param.removeprefix("docker-")
    if runtime == "runsc" and '"runsc"' not in docker_fixtures.docker("info", "--format", "{{json .Runtimes}}").stdout:
        pytest.skip("runsc is not registered: scripts/docker-engine.sh --gvisor")
    docker = DockerSandbox(runtime=runtime)  # type: ignore[arg-type]
    try:
        yield docker
    finally:
        left = docker_fixtures.containers_labelled(f"sluice.sandbox={docker.id}")
        await docker.close()
    assert left == [], f"containers left behind after the case: {left}"


# --- helpers -------------------------------------------------------------------------

def call(function: str, data: dict[str, Any] | None = None) -> bytes:
    return protocol.pack({
        "v": 1, "kind": "call", "function": function,
        "event": {"name": "conformance/test", "data": data or {}},
        "steps": {}, "run": {"id": "run-1", "attempt": 0}, "target": None,
    })


def step_op(result: Result) -> dict[str, Any]:
    """How a successful call of a function that returns its one step's output went: a lone
    ``step_error`` or ``error`` op, or the ``step`` op, which must then be followed by exactly
    the function's ``done`` with that same output (the last step's call also returns the result)."""
    assert result.ok, (result.error, result.stderr[-800:])
    assert (result.exit_code, result.error, result.timed_out) == (0, None, False)
    ops = protocol.decode_response(result.stdout)["ops"]
    if ops and ops[0]["op"] == "step":
        assert ops == [ops[0], {"op": "done", "data": ops[0]["data"]}], ops
        return ops[0]
    (op,) = ops
    assert op["op"] in ("step_error", "error"), op
    return op


def failed(result: Result) -> str:
    """The error of a failed run (asserting it did fail)."""
    assert not result.ok and result.error is not None, result
    return result.error


# --- the cases -----------------------------------------------------------------------

async def test_introspect_returns_the_apps_description(sandbox: Sandbox, conformance_app: Target) -> None:
    await sandbox.prepare(conformance_app)
    result = await sandbox.run(conformance_app, protocol.pack({"v": 1, "kind": "introspect"}), CALL)
    assert result.ok and (result.exit_code, result.error, result.timed_out) == (0, None, False), result
    described = protocol.decode_introspection(result.stdout)
    assert described["app"] == "conformance"
    assert {fn["id"] for fn in described["functions"]} >= {"double", "spin", "memory-bomb", "peek"}
    assert b"conformance app loaded" in result.stderr


async def test_a_call_that_runs_a_step_returns_the_step_and_its_data(
    sandbox: Sandbox, conformance_app: Target
) -> None:
    op = step_op(await sandbox.run(conformance_app, call("double", {"n": 21}), CALL))
    assert op == {"op": "step", "id": protocol.step_id("double"), "name": "double",
                  "data": {"n": 42, "text": "h\u00e9llo"}}


async def test_user_prints_go_to_stderr_and_stdout_holds_only_the_response(
    sandbox: Sandbox, conformance_app: Target
) -> None:
    result = await sandbox.run(conformance_app, call("chatty"), CALL)
    assert step_op(result)["data"] == "fine"
    for line in (b"a print during the call", b"a sys.stdout write", b"a print in a step"):
        assert line in result.stderr
        assert line not in result.stdout


async def test_a_small_call_fits_in_48_mib(sandbox: Sandbox, conformance_app: Target) -> None:
    # The shim once read stdin with read(64 MiB + 1); under WASM that allocation is guest
    # memory, so every Python call failed below about 72 MiB.
    result = await sandbox.run(conformance_app, call("double", {"n": 1}), Limits(timeout_s=30, memory_mb=48))
    assert step_op(result)["data"]["n"] == 2


async def test_a_guest_spinning_past_its_timeout_is_stopped_promptly(
    sandbox: Sandbox, conformance_app: Target
) -> None:
    started = time.monotonic()
    result = await sandbox.run(conformance_app, call("spin"), Limits(timeout_s=2))
    elapsed = time.monotonic() - started
    assert result.timed_out and "timed out" in failed(result)
    assert result.error == "timed out after 2 s"
    assert result.exit_code is None
    assert elapsed < 2 + 5, f"the call took {elapsed:.1f} s"


async def test_a_non_zero_exit_is_reported_with_its_code(sandbox: Sandbox, conformance_app: Target) -> None:
    result = await sandbox.run(conformance_app, call("exit-3"), CALL)
    assert failed(result) == "exited with code 3"
    assert result.exit_code == 3 and not result.timed_out
    assert result.stdout == b""
    assert b"leaving with 3" in result.stderr


async def test_an_answer_larger_than_max_stdout_bytes_is_cut_and_fails(
    sandbox: Sandbox, conformance_app: Target
) -> None:
    limits = Limits(timeout_s=30, max_stdout_bytes=1 * MiB)
    result = await sandbox.run(conformance_app, call("big-answer", {"bytes": 2 * MiB}), limits)
    assert failed(result) == f"stdout exceeded {1 * MiB} bytes"
    assert "stdout exceeded" in failed(result)
    assert len(result.stdout) == 1 * MiB and not result.timed_out


async def test_a_guest_flooding_fd_1_fails_alone_at_an_output_cap(
    sandbox: Sandbox, conformance_app: Target
) -> None:
    # Where fd 1 lands is the shim's business: it points fd 1 at stderr where the OS has
    # dup2 (Docker), and cannot on WASI (no dup2), so the flood hits stdout there.
    cap = 256 * 1024
    limits = Limits(timeout_s=30, max_stdout_bytes=cap, max_stderr_bytes=cap)
    started = time.monotonic()
    result = await sandbox.run(conformance_app, call("fd-1-flood"), limits)
    assert failed(result) in (f"stdout exceeded {cap} bytes", f"stderr exceeded {cap} bytes")
    assert not result.timed_out and time.monotonic() - started < 15  # stopped at the cap, not the timeout
    assert len(result.stdout) <= cap and len(result.stderr) <= cap


async def test_a_memory_bomb_fails_as_out_of_memory(sandbox: Sandbox, conformance_app: Target) -> None:
    result = await sandbox.run(conformance_app, call("memory-bomb"), Limits(timeout_s=30, memory_mb=64))
    assert failed(result).startswith("out of memory (limit 64 MiB)"), (result.error, result.stderr[-500:])
    assert not result.timed_out
    assert result.stdout == b""


async def test_the_guest_cannot_read_host_files_or_write_etc_passwd(
    sandbox: Sandbox, conformance_app: Target, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("the host's secret")
    result = await sandbox.run(conformance_app, call("peek", {"host_file": str(secret)}), CALL)
    seen = step_op(result)["data"]
    assert seen["host_file"] in ("FileNotFoundError", "PermissionError")
    assert seen["write_passwd"] in ("PermissionError", "OSError", "FileNotFoundError")
    # Reading /etc/passwd: WASM has no /etc at all; a container reads its image's own file.
    expected_read = ("read",) if sandbox.name == "docker" else ("FileNotFoundError", "PermissionError")
    assert seen["read_passwd"] in expected_read
    assert b"the host's secret" not in result.stdout + result.stderr


async def test_a_garbage_request_is_the_shims_exit_code_2(sandbox: Sandbox, conformance_app: Target) -> None:
    result = await sandbox.run(conformance_app, b"\xc1 garbage", CALL)
    assert failed(result) == "exited with code 2"
    assert result.exit_code == 2 and not result.timed_out
    assert result.stdout == b""
    assert b"bad request: not msgpack" in result.stderr


async def test_a_target_kind_the_driver_does_not_run_is_a_sandbox_error(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    module = tmp_path / "guest.wat"
    module.write_text('(module (func (export "_start")))')
    foreign = Target("image", "sluice/base:bookworm") if sandbox.name == "wasm" else Target("module", str(module))
    with pytest.raises(SandboxError, match=foreign.kind):
        await sandbox.prepare(foreign)
    with pytest.raises(SandboxError, match=foreign.kind):
        await sandbox.run(foreign, b"", CALL)


async def test_close_is_safe_twice_and_a_closed_sandbox_refuses_to_run(
    sandbox: Sandbox, conformance_app: Target
) -> None:
    assert step_op(await sandbox.run(conformance_app, call("double", {"n": 1}), CALL))["op"] == "step"
    await sandbox.close()
    await sandbox.close()
    with pytest.raises(SandboxError, match="closed"):
        await sandbox.run(conformance_app, call("double", {"n": 1}), CALL)
