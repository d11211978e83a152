"""One request in one fresh container: create, attach, start, feed stdin, collect, remove.

The hardened container config of DESIGN §5 lives in :func:`container_config`; the
warm pool (``_docker_pool``) starts its containers from the same config.

Every run ends with the container removed, whatever happened: normal exit, a limit
hit, an engine error, or the awaiting task being cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sandboxes import _docker_seccomp as seccomp
from sandboxes._docker_api import EngineClient, EngineError
from sandboxes.base import Limits, MiB, Result, SandboxError

#: The user every guest runs as (nobody:nogroup).
GUEST_USER = "65534:65534"
#: Label on every container this sandbox starts; ``sluice.sandbox`` names the owner.
LABEL = "sluice"
#: Open files per guest process.
NOFILE = 1024
#: Longest ``NAME=VALUE`` of one variable, NUL included: the kernel's MAX_ARG_STRLEN
#: (32 pages); execve refuses a longer one with E2BIG (bytes).
MAX_ENV_VAR_BYTES = 32 * 4096
#: Largest whole environment (the ``NAME=VALUE`` strings with their NULs); well under
#: execve's ARG_MAX share, and it keeps the create body small (bytes).
MAX_ENV_BYTES = 1 * MiB
#: Under gVisor (ptrace platform) every guest process or thread costs the sandbox
#: several host threads and a stub process, all in the container's pids cgroup, and the
#: Sentry dies when it cannot make one. Measured here (runsc 2022-12-19, ptrace): about
#: 46 host pids for the sandbox itself and about 7 per guest process, so ``limits.pids``
#: guest tasks need ``RUNSC_PIDS_BASE + RUNSC_PIDS_PER_TASK * limits.pids`` host pids.
RUNSC_PIDS_BASE = 64
RUNSC_PIDS_PER_TASK = 8


def container_config(
    image: str, env: Mapping[str, str], limits: Limits, *, runtime: str, labels: Mapping[str, str]
) -> dict[str, Any]:
    """The Engine API create body for one hardened guest (DESIGN §5).

    No network interface, read-only root, a noexec ``/tmp`` of ``limits.tmpfs_mb`` and a
    ``/dev/shm`` of the same size (Docker's default would be an uncapped 64 MiB),
    every capability dropped, no privilege gain, the default seccomp profile (by not
    overriding it; under runsc an equivalent one, see ``_docker_seccomp``), a non-root
    user, pids/memory/CPU caps with swap off, no mounts,
    no log driver (output travels only over the attach stream, so a flood cannot
    fill the host's disk), and only ``env``. Under ``runsc`` the pids cap is scaled
    (see :data:`RUNSC_PIDS_PER_TASK`) so that it still means guest processes and threads.

    Raises :class:`SandboxError` for an environment execve would refuse (a variable over
    :data:`MAX_ENV_VAR_BYTES`, all of it over :data:`MAX_ENV_BYTES`, a bad name) and
    for limits Docker cannot apply.
    """
    _check_env(env)
    _check_limits(limits)
    memory = limits.memory_mb * MiB
    return {
        "Image": image,
        "Env": [f"{k}={v}" for k, v in env.items()],
        "User": GUEST_USER,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": True,
        # The guest's stdin closes when the host half-closes the attach connection.
        "StdinOnce": True,
        "Tty": False,
        "NetworkDisabled": True,
        "Labels": {LABEL: "1", **labels},
        "HostConfig": {
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "Tmpfs": {"/tmp": f"rw,noexec,nosuid,nodev,size={limits.tmpfs_mb}m"},
            "CapDrop": ["ALL"],
            "SecurityOpt": security_opts(runtime),
            "PidsLimit": host_pids(limits, runtime),
            "Memory": memory,
            "MemorySwap": memory,
            "NanoCpus": int(limits.cpus * 1e9),
            "Ulimits": [{"Name": "nofile", "Soft": NOFILE, "Hard": NOFILE}],
            "Runtime": runtime,
            "LogConfig": {"Type": "none", "Config": {}},
            "IpcMode": "private",
            "ShmSize": limits.tmpfs_mb * MiB,
            "Privileged": False,
            "Binds": [],
            "Mounts": [],
        },
    }


def security_opts(runtime: str) -> list[str]:
    """No privilege gain; under runsc also the seccomp profile of ``_docker_seccomp``
    (runc keeps Docker's default profile by not naming one)."""
    if runtime == "runsc":
        return ["no-new-privileges", f"seccomp={seccomp.profile_json()}"]
    return ["no-new-privileges"]


def host_pids(limits: Limits, runtime: str) -> int:
    """The container's pids cgroup cap for ``limits.pids`` guest tasks under ``runtime``."""
    if runtime == "runsc":
        return RUNSC_PIDS_BASE + RUNSC_PIDS_PER_TASK * limits.pids
    return limits.pids


def oom_killed(state: Mapping[str, Any], exit_code: int, runtime: str) -> bool:
    """Whether an exited container (its inspect ``State``) was killed for memory.

    Docker's ``OOMKilled`` flag is not always set for gVisor: there the host's OOM killer
    takes a sandbox process and the container ends with 137 (SIGKILL), which nothing else
    causes without the host asking (a kill the host sends is never reported this way).
    """
    return bool(state.get("OOMKilled")) or (runtime == "runsc" and exit_code == 137)


def exit_error(exit_code: int, runtime: str, limits: Limits, stderr: bytes) -> str:
    """``Result.error`` for a guest that exited with ``exit_code`` (not OOM-killed).

    Under gVisor an exit code of 2 without the shim's own "bad request" line is the
    Sentry dying (Go's fatal-error code) because it could not make a thread: the pids cap.
    """
    if runtime == "runsc" and exit_code == 2 and b"sluice shim: bad request" not in stderr:
        return (f"pids limit ({limits.pids}) reached: the gVisor sandbox could not start "
                "a thread and exited with code 2")
    return f"exited with code {exit_code}"


def _check_env(env: Mapping[str, str]) -> None:
    total = 0
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise SandboxError(f"bad environment variable name {key!r}: non-empty, no '=' or NUL")
        if not isinstance(value, str) or "\0" in value:
            raise SandboxError(f"environment variable {key!r} must be a string without NUL")
        size = len(key.encode()) + 1 + len(value.encode(errors="surrogateescape")) + 1
        if size > MAX_ENV_VAR_BYTES:
            raise SandboxError(
                f"environment variable {key!r} is {size} bytes as NAME=VALUE; the kernel's limit "
                f"for one variable is {MAX_ENV_VAR_BYTES} (execve: argument list too long)"
            )
        total += size
    if total > MAX_ENV_BYTES:
        raise SandboxError(
            f"the environment is {total} bytes over {len(env)} variables; the limit is {MAX_ENV_BYTES}"
        )


def _check_limits(limits: Limits) -> None:
    if limits.memory_mb < 6:
        raise SandboxError(f"limits.memory_mb must be at least 6 (Docker's floor), got {limits.memory_mb}")
    if limits.cpus <= 0:
        raise SandboxError(f"limits.cpus must be positive, got {limits.cpus}")
    if limits.pids < 1 or limits.tmpfs_mb < 1 or limits.timeout_s <= 0:
        raise SandboxError(f"limits must be positive: {limits}")


class _Output:
    """stdout and stderr, each capped; remembers which cap broke first."""

    def __init__(self, limits: Limits) -> None:
        self.caps = {1: limits.max_stdout_bytes, 2: limits.max_stderr_bytes}
        self.bufs = {1: bytearray(), 2: bytearray()}
        self.exceeded: str | None = None

    def add(self, stream: int, chunk: bytes) -> bool:
        """Keep ``chunk``; false once a cap is exceeded (the run must stop)."""
        if stream not in self.bufs:
            return True
        buf, cap = self.bufs[stream], self.caps[stream]
        room = cap - len(buf)
        buf += chunk[: max(room, 0)]
        if len(chunk) > room:
            name = "stdout" if stream == 1 else "stderr"
            self.exceeded = f"{name} exceeded {cap} bytes"
            return False
        return True


class OneShotRunner:
    """Runs one request per fresh container. Tracks live containers for cleanup."""

    def __init__(self, api: EngineClient, *, runtime: str, owner: str) -> None:
        self.api = api
        self.runtime = runtime
        self.owner = owner
        #: Container ids created and not yet removed.
        self.live: set[str] = set()
        #: Set by the sandbox's close(): runs still underway then end in SandboxError.
        self.closing = False

    async def run(
        self, image: str, env: Mapping[str, str], request: bytes, limits: Limits, *, runtime: str | None = None
    ) -> Result:
        """Run ``request`` in a fresh container of ``image`` (under ``runtime``, default the
        runner's). ``Result.timings``: ``acquire_ms`` (create, attach, start), ``run_ms``
        (the guest until it exits), ``remove_ms`` (not in ``duration_ms``)."""
        runtime = runtime or self.runtime
        config = container_config(image, env, limits, runtime=runtime, labels={"sluice.sandbox": self.owner})
        started = time.monotonic()
        name = f"sluice-{uuid.uuid4().hex[:16]}"
        try:
            cid = await self.api.create(name, config)
        except EngineError as exc:
            raise SandboxError(f"cannot create a container from {image}: {exc.message}") from None
        self.live.add(cid)
        try:
            result = await self._run(cid, request, limits, started, runtime)
        finally:
            # Shielded: a cancelled caller still gets its container removed.
            removing = time.monotonic()
            await asyncio.shield(self._discard(cid))
        timings = {**result.timings, "remove_ms": (time.monotonic() - removing) * 1000}
        return replace(result, timings=timings)

    async def _discard(self, cid: str) -> None:
        try:
            await self.api.remove(cid)
        except EngineError:
            return  # stays in self.live; close() retries
        self.live.discard(cid)

    async def _run(self, cid: str, request: bytes, limits: Limits, started: float, runtime: str) -> Result:
        out = _Output(limits)
        timed_out = False
        attachment = await self.api.attach(cid)
        try:
            try:
                await self.api.start(cid)
            except EngineError as exc:
                raise SandboxError(f"cannot start container: {exc.message}") from None
            running = time.monotonic()
            feeder = asyncio.create_task(attachment.send_stdin(request))
            exit_code: int | None = None
            try:
                # One deadline for output and exit: a guest that closes its stdout
                # and keeps running is still stopped on time.
                frames = contextlib.aclosing(attachment.frames())
                async with asyncio.timeout(limits.timeout_s), frames as chunks:
                    async for stream, chunk in chunks:
                        if not out.add(stream, chunk):
                            break
                    if not out.exceeded:
                        exit_code = await self.api.wait(cid)
            except TimeoutError:
                timed_out = True
            finally:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
        finally:
            attachment.close()
        if exit_code is None:
            await self.api.kill(cid)
            exit_code = await self.api.wait(cid)
        oom = False
        if exit_code != 0 and not timed_out and not out.exceeded:
            state = (await self.api.inspect(cid)).get("State", {})
            oom = oom_killed(state, exit_code, runtime)
        if self.closing:
            # The host killed it, not the guest's fault: say so instead of "code 137".
            raise SandboxError("the docker sandbox was closed during the run")
        ended = time.monotonic()
        duration_ms = (ended - started) * 1000
        error: str | None = None
        if timed_out:
            error = f"timed out after {limits.timeout_s:g} s"
        elif out.exceeded:
            error = out.exceeded
        elif oom:
            error = f"out of memory (limit {limits.memory_mb} MiB)"
        elif exit_code != 0:
            error = exit_error(exit_code, runtime, limits, bytes(out.bufs[2]))
        return Result(
            ok=error is None,
            stdout=bytes(out.bufs[1]),
            stderr=bytes(out.bufs[2]),
            exit_code=None if timed_out else exit_code,
            error=error,
            duration_ms=duration_ms,
            timed_out=timed_out,
            timings={"acquire_ms": (running - started) * 1000, "run_ms": (ended - running) * 1000},
        )
