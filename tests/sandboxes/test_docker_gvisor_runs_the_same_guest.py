"""Under gVisor (runtime ``runsc``) a guest is as boxed in as under runc, and leaves nothing.

Skipped unless the engine has ``runsc`` registered (``scripts/docker-engine.sh --gvisor``):
gVisor is optional, so this skips under CI too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandboxes.base import Limits, Target
from sandboxes.docker import DockerSandbox
from tests.sandboxes import docker_fixtures as fx

# Fixtures shared with the other Docker test modules (see docker_fixtures.py).
docker_engine, probe_image = fx.docker_engine, fx.probe_image

pytestmark = pytest.mark.docker


def _runsc_processes() -> int:
    """How many runsc sandbox or gofer processes run on this host (read from /proc)."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith((b"runsc-sandbox", b"runsc-gofer")):
            count += 1
    return count


@pytest.fixture
async def gvisor_sandbox(docker_engine: None) -> AsyncIterator[DockerSandbox]:
    if '"runsc"' not in fx.docker("info", "--format", "{{json .Runtimes}}").stdout:
        pytest.skip("runsc is not registered: scripts/docker-engine.sh --gvisor")
    before = _runsc_processes()
    sandbox = DockerSandbox(runtime="runsc")
    yield sandbox
    await sandbox.close()
    assert fx.containers_labelled(f"sluice.sandbox={sandbox.id}") == []
    # runsc's processes exit a moment after their container is removed: allow them that
    # moment, but not to linger.
    deadline = time.monotonic() + 5
    while _runsc_processes() > before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert _runsc_processes() <= before, "runsc-sandbox or runsc-gofer processes outlived their containers"


async def test_a_gvisor_guest_has_no_network_no_root_and_no_caps(
    gvisor_sandbox: DockerSandbox, probe_image: str
) -> None:
    result = await gvisor_sandbox.run(Target("image", probe_image), b"report", Limits(timeout_s=30))
    assert result.ok, (result.error, result.stderr)
    seen = json.loads(result.stdout)
    assert (seen["uid"], seen["gid"]) == (65534, 65534)
    assert seen["interfaces"] == ["lo"]
    assert seen["root_writable"] is False
    assert int(seen["cap_eff"], 16) == 0


async def test_gvisor_enforces_the_timeout_and_the_memory_limit(
    gvisor_sandbox: DockerSandbox, probe_image: str
) -> None:
    target = Target("image", probe_image)
    slept = await gvisor_sandbox.run(target, b"sleep", Limits(timeout_s=1.0))
    assert slept.error == "timed out after 1 s"
    bomb = await gvisor_sandbox.run(target, b"oom", Limits(timeout_s=30, memory_mb=48))
    assert bomb.error == "out of memory (limit 48 MiB)"
