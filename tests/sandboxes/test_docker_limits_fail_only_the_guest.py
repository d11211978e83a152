"""A guest that runs too long, exits badly, floods output or eats memory fails alone.

Each case is a ``Result`` with a one-line error, never an exception, and its
container is gone afterwards (the ``docker_sandbox`` fixture checks).
"""

from __future__ import annotations

import json
import time

import pytest

from sandboxes.base import Limits, MiB, Target
from sandboxes.docker import DockerSandbox
from tests.sandboxes import docker_fixtures as fx

# Fixtures shared with the other Docker test modules (see docker_fixtures.py).
docker_engine, docker_sandbox, probe_image = fx.docker_engine, fx.docker_sandbox, fx.probe_image

pytestmark = pytest.mark.docker


async def test_a_guest_that_sleeps_past_its_timeout_is_killed_and_reported(
    docker_sandbox: DockerSandbox, probe_image: str
) -> None:
    started = time.monotonic()
    result = await docker_sandbox.run(Target("image", probe_image), b"sleep", Limits(timeout_s=1.0))
    assert time.monotonic() - started < 5
    assert not result.ok and result.timed_out
    assert result.error == "timed out after 1 s"
    assert result.exit_code is None


async def test_a_guest_that_closes_its_output_and_hangs_still_times_out(
    docker_sandbox: DockerSandbox, probe_image: str
) -> None:
    result = await docker_sandbox.run(Target("image", probe_image), b"close-and-hang", Limits(timeout_s=1.5))
    assert result.timed_out and result.error == "timed out after 1.5 s"
    assert result.stdout == b"partial"


async def test_a_non_zero_exit_is_reported_with_its_code_and_logs(
    docker_sandbox: DockerSandbox, probe_image: str
) -> None:
    result = await docker_sandbox.run(Target("image", probe_image), b"exit3", Limits(timeout_s=30))
    assert not result.ok
    assert (result.exit_code, result.error) == (3, "exited with code 3")
    assert result.stderr == b"bye\n"


async def test_a_stdout_flood_is_cut_at_the_cap(docker_sandbox: DockerSandbox, probe_image: str) -> None:
    limits = Limits(timeout_s=30, max_stdout_bytes=1 * MiB)
    result = await docker_sandbox.run(Target("image", probe_image), b"flood", limits)
    assert not result.ok and not result.timed_out
    assert result.error == f"stdout exceeded {1 * MiB} bytes"
    assert len(result.stdout) == 1 * MiB


async def test_a_stderr_flood_is_cut_at_the_cap(docker_sandbox: DockerSandbox, probe_image: str) -> None:
    limits = Limits(timeout_s=30, max_stderr_bytes=64 * 1024)
    result = await docker_sandbox.run(Target("image", probe_image), b"flood-stderr", limits)
    assert result.error == f"stderr exceeded {64 * 1024} bytes"
    assert len(result.stderr) == 64 * 1024


async def test_a_memory_bomb_is_reported_as_out_of_memory(
    docker_sandbox: DockerSandbox, probe_image: str
) -> None:
    limits = Limits(timeout_s=30, memory_mb=48)
    result = await docker_sandbox.run(Target("image", probe_image), b"oom", limits)
    assert not result.ok and not result.timed_out
    assert result.error == "out of memory (limit 48 MiB)", (result.error, result.stderr[-500:])


async def test_a_fork_bomb_stops_at_the_pids_limit(docker_sandbox: DockerSandbox, probe_image: str) -> None:
    limits = Limits(timeout_s=30, pids=16)
    result = await docker_sandbox.run(Target("image", probe_image), b"forkbomb", limits)
    assert result.ok, (result.error, result.stderr[-500:])
    seen = json.loads(result.stdout)
    assert seen["children"] < 16 and seen["error"] == "Resource temporarily unavailable"


async def test_filling_tmp_stops_at_the_tmpfs_size(docker_sandbox: DockerSandbox, probe_image: str) -> None:
    limits = Limits(timeout_s=30, tmpfs_mb=2)
    result = await docker_sandbox.run(Target("image", probe_image), b"diskfill", limits)
    assert result.ok, (result.error, result.stderr[-500:])
    seen = json.loads(result.stdout)
    assert seen["written"] <= 2 * MiB and seen["error"] == "No space left on device"


async def test_a_large_request_reaches_the_guest_whole(
    docker_sandbox: DockerSandbox, probe_image: str
) -> None:
    request = b"echo " + bytes(range(256)) * (4 * 4096)  # 4 MiB + 5 bytes
    result = await docker_sandbox.run(Target("image", probe_image), request, Limits(timeout_s=30))
    assert result.ok, result.error
    assert result.stdout == request
    assert result.stderr == f"echoing {len(request)} bytes\n".encode()
