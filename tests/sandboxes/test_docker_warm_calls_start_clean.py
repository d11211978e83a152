"""Every call of a warm container starts from the state right after the app's import:
what an earlier call left (files, processes, threads, a patched SDK, a forged answer)
never reaches a later one; /dev/shm is capped; a bad environment is refused up front."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from sandboxes.base import Limits, SandboxError, Target
from sandboxes.docker import DockerSandbox
from sluice import protocol
from tests.sandboxes import docker_fixtures as fx

docker_engine, make_sandbox = fx.docker_engine, fx.make_sandbox

pytestmark = pytest.mark.docker

CALL = Limits(timeout_s=30, tmpfs_mb=4)
Make = Callable[..., DockerSandbox]

LITTER_APP = '''
import os
import socket
import subprocess
import threading
import time

import sluice
import sluice._app as sdk

app = sluice.App("litter")


@app.function(id="litter")
def litter(ctx):
    def leave():
        for where in ("/tmp/left", "/dev/shm/left"):
            with open(where, "w") as f:
                f.write("x")
        os.makedirs("/tmp/locked/inner")
        os.chmod("/tmp/locked", 0o500)
        subprocess.Popen(["sleep", "3600"], start_new_session=True)
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
        sdk.encode_ops = lambda *a, **k: b"poisoned"
        return socket.gethostname()

    return ctx.step.run("leave", leave)


@app.function(id="look")
def look(ctx):
    def live(pid):  # an earlier call's process may still be exiting (it runs no code): not counted
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            return False
        return fields[0] != b"Z" and not int(fields[6]) & 0x4

    def seen():
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and live(p))
        return {"host": socket.gethostname(), "pids": pids, "me": os.getpid(), "parent": os.getppid(),
                "tmp": os.listdir("/tmp"), "shm": os.listdir("/dev/shm"),
                "threads": len(os.listdir("/proc/self/task"))}

    return ctx.step.run("look", seen)


@app.function(id="forge")
def forge(ctx):
    # Under gVisor a child may open the parent's stdout: write a whole fake answer and
    # end frame there. (Under runc /proc/1/fd is closed to it.)
    fake = b"\\x81\\xa1v\\x01"
    done = []
    for fd in range(3, 16):
        try:
            with open(f"/proc/1/fd/{fd}", "wb", buffering=0) as out:
                out.write(len(fake).to_bytes(4, "big") + fake + (16).to_bytes(4, "big") + b"0" * 16)
                done.append(fd)
        except OSError:
            pass
    return ctx.step.run("forge", lambda: done)


@app.function(id="shm")
def shm(ctx):
    def fill():
        written = 0
        with open("/dev/shm/fill", "wb") as f:
            while written < 64 << 20:
                f.write(b"x" * (1 << 20))
                f.flush()
                written += 1 << 20
        return written

    return ctx.step.run("fill", fill)


@app.function(id="forks")
def forks(ctx):
    def make():
        children = [subprocess.Popen(["sleep", "5"]) for _ in range(ctx.event.data["n"])]
        for child in children:
            child.kill()
            child.wait()
        return len(children)

    return ctx.step.run("forks", make)
'''


@pytest.fixture(scope="session")
def litter_app(tmp_path_factory: pytest.TempPathFactory) -> Target:
    app_dir: Path = tmp_path_factory.mktemp("litter-app")
    (app_dir / "app.py").write_text(LITTER_APP)
    return Target("python", str(app_dir))


RUNTIMES = ["runc", "runsc"]


def _runtime(runtime: str) -> None:
    if runtime == "runsc" and '"runsc"' not in fx.docker("info", "--format", "{{json .Runtimes}}").stdout:
        pytest.skip("runsc is not registered: scripts/docker-engine.sh --gvisor")


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_later_call_in_the_same_container_finds_nothing_an_earlier_call_left(
    make_sandbox: Make, litter_app: Target, runtime: str
) -> None:
    _runtime(runtime)
    sandbox = make_sandbox()
    target = replace(litter_app, isolation=runtime)
    host = fx.step_data(await sandbox.run(target, fx.call("litter"), CALL))
    later = await sandbox.run(target, fx.call("look"), CALL)
    assert later.warm
    seen = fx.step_data(later)  # decodes: the SDK patch did not outlive its call
    assert seen["host"] == host, "the same container served both calls"
    assert (seen["tmp"], seen["shm"]) == ([], [])
    # Only the trusted parent (pid 1, which never runs a call) and this call's process.
    assert seen["pids"] == sorted({1, seen["me"]}) and seen["parent"] == 1
    assert seen["threads"] == 1


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_an_answer_forged_on_the_parents_stdout_fails_only_the_forging_call(
    make_sandbox: Make, litter_app: Target, runtime: str
) -> None:
    _runtime(runtime)
    sandbox = make_sandbox()
    target = replace(litter_app, isolation=runtime)
    forged = await sandbox.run(target, fx.call("forge"), CALL)
    if forged.ok:  # runc: the parent's fds were out of reach
        assert fx.step_data(forged) == []
    else:
        assert forged.error == "the guest wrote past its response", forged
    for _ in range(3):
        assert fx.step_data(await sandbox.run(target, fx.call("look"), CALL))["tmp"] == []


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_dev_shm_is_capped_at_tmpfs_mb(make_sandbox: Make, litter_app: Target, runtime: str) -> None:
    _runtime(runtime)
    sandbox = make_sandbox()
    result = await sandbox.run(replace(litter_app, isolation=runtime), fx.call("shm"), CALL)
    (op,) = protocol.decode_response(result.stdout)["ops"]
    assert op["op"] == "step_error" and "No space left" in op["error"]["message"], op


async def test_a_guest_under_gvisor_gets_its_pids_limit_in_processes(
    make_sandbox: Make, litter_app: Target
) -> None:
    _runtime("runsc")
    sandbox = make_sandbox()
    target = replace(litter_app, isolation="runsc")
    result = await sandbox.run(target, fx.call("forks", n=16), replace(CALL, pids=32))
    assert fx.step_data(result) == 16


@pytest.mark.parametrize(("env", "named"), [
    ({"BIG": "x" * (128 << 10)}, "'BIG'"),
    ({f"V{i}": "x" * 1000 for i in range(1100)}, "the environment is"),
])
async def test_an_environment_execve_would_refuse_is_a_sandbox_error_naming_it(
    make_sandbox: Make, litter_app: Target, env: dict[str, str], named: str
) -> None:
    sandbox = make_sandbox()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SandboxError, match="environment") as caught:
            await sandbox.run(replace(litter_app, env=env), fx.call("look"), CALL)
    assert named in str(caught.value)
    assert fx.step_data(await sandbox.run(replace(litter_app, env={"A": "x" * 100_000}), fx.call("look"), CALL))
