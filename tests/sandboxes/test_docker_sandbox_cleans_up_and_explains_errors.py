"""No container outlives its run, and host-side problems name what to do."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sandboxes import open_sandbox
from sandboxes.base import Limits, SandboxError, Target
from sandboxes.docker import DockerSandbox
from tests.sandboxes import docker_fixtures as fx

# Fixtures shared with the other Docker test modules (see docker_fixtures.py).
docker_engine, docker_sandbox, probe_image = fx.docker_engine, fx.docker_sandbox, fx.probe_image

pytestmark = pytest.mark.docker


async def _wait_for_container(owner: str, *, timeout_s: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = fx.containers_labelled(f"sluice.sandbox={owner}")
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("the container never appeared")


async def test_cancelling_a_run_removes_its_container(
    docker_sandbox: DockerSandbox, probe_image: str
) -> None:
    run = docker_sandbox.run(Target("image", probe_image), b"sleep", Limits(timeout_s=60))
    task = asyncio.create_task(run)
    await _wait_for_container(docker_sandbox.id)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fx.containers_labelled(f"sluice.sandbox={docker_sandbox.id}") == []


async def test_close_removes_a_running_container_and_is_safe_twice(
    docker_engine: None, probe_image: str
) -> None:
    sandbox = DockerSandbox()
    task = asyncio.create_task(sandbox.run(Target("image", probe_image), b"sleep", Limits(timeout_s=60)))
    await _wait_for_container(sandbox.id)
    await sandbox.close()
    await sandbox.close()
    assert fx.containers_labelled(f"sluice.sandbox={sandbox.id}") == []
    # The run whose container vanished ends with an error, not a hang.
    [outcome] = await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
    assert isinstance(outcome, SandboxError)
    with pytest.raises(SandboxError, match="closed"):
        await sandbox.run(Target("image", probe_image), b"echo", Limits())


async def test_runs_in_parallel_each_get_their_own_container(
    docker_sandbox: DockerSandbox, probe_image: str
) -> None:
    target = Target("image", probe_image)
    results = await asyncio.gather(
        *(docker_sandbox.run(target, f"echo {i}".encode(), Limits(timeout_s=30)) for i in range(4))
    )
    assert [r.stdout for r in results] == [f"echo {i}".encode() for i in range(4)]


async def test_a_missing_image_says_there_is_no_registry(docker_sandbox: DockerSandbox) -> None:
    with pytest.raises(SandboxError, match="no registry"):
        await docker_sandbox.prepare(Target("image", "sluice-test/does-not-exist:1"))


async def test_a_python_target_without_app_py_is_refused(
    docker_sandbox: DockerSandbox, tmp_path: Path
) -> None:
    with pytest.raises(SandboxError, match=r"no app\.py"):
        await docker_sandbox.prepare(Target("python", str(tmp_path)))
    with pytest.raises(SandboxError, match="not a directory"):
        await docker_sandbox.prepare(Target("python", str(tmp_path / "nope")))


async def test_a_wasm_module_target_is_refused(docker_sandbox: DockerSandbox) -> None:
    with pytest.raises(SandboxError, match="not 'module'"):
        await docker_sandbox.prepare(Target("module", "x.wasm"))


async def test_an_unregistered_runtime_is_explained(docker_engine: None, probe_image: str) -> None:
    runtimes = fx.docker("info", "--format", "{{json .Runtimes}}").stdout
    if '"runsc"' in runtimes:
        pytest.skip("runsc is registered on this engine")
    async with DockerSandbox(runtime="runsc") as sandbox:
        with pytest.raises(SandboxError, match=r"docker-engine\.sh --gvisor"):
            await sandbox.prepare(Target("image", probe_image))


def test_the_driver_is_found_by_name_and_bad_runtimes_are_refused() -> None:
    assert isinstance(open_sandbox("docker"), DockerSandbox)
    with pytest.raises(SandboxError, match="runc or runsc"):
        DockerSandbox(runtime="kata")  # type: ignore[arg-type]
