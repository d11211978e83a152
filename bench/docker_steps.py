"""Family ``docker``: one call of the tiny Python app in a Docker container (runc).

Rows:

* ``docker.cold`` — ``DockerSandbox.run`` with ``Target.warm=False``: one fresh,
  hardened container per call (create, attach, start, feed stdin, collect, remove);
  peer ``docker.bare``; goal at most 1.3 times the peer.
* ``docker.bare`` — ``docker run --rm -i --network none IMAGE`` through the docker CLI,
  the same app image fed the same request on stdin: the floor a cold start cannot beat.
* ``docker.warm`` — ``DockerSandbox.run`` with ``Target.warm=True`` (a warm container
  from the pool, when the sandbox has one); goal p50 ≤ 3 ms; peer ``docker.cold``.

The cold and bare calls are interleaved (cold, bare, cold, bare, ...) so both see the
same machine. :func:`measure_runtime` is shared with the ``gvisor`` family.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.guests import KERNEL_REQUEST, TINY_APP, WORK_REQUEST, check_work, kernel_of, sandbox_call, served_warm
from bench.measure import BenchError, Budget, Settings, TimingsMean, Verify, measure, measure_interleaved
from bench.report import Goal, Row
from sandboxes.base import Limits, Target
from sandboxes.docker import DockerSandbox

FAMILY = "docker"
LIMITS = Limits(memory_mb=128, timeout_s=30.0)
#: Longest one bare ``docker run`` may take (s).
BARE_TIMEOUT_S = 30.0
NOT_BUILT = "n/a (not built yet): Target.warm=True was served by a fresh container (Result.warm is false)"


def rows() -> list[Row]:
    return runtime_rows("docker", "runc", goals=True)


def runtime_rows(prefix: str, runtime: str, *, goals: bool) -> list[Row]:
    """The cold, bare and warm rows for ``runtime``, named ``<prefix>.cold`` etc."""
    cold, bare, warm = f"{prefix}.cold", f"{prefix}.bare", f"{prefix}.warm"
    return [
        Row(cold, prefix, f"DockerSandbox.run, Target.warm=False, {runtime}: one container per call",
            peer=bare, goal=Goal("ratio", 1.3, "<= 1.3x peer") if goals else None),
        Row(bare, prefix, f"docker run --rm -i --network none{' --runtime ' + runtime if runtime != 'runc' else ''}"
            " IMAGE, same request on stdin"),
        Row(warm, prefix, f"DockerSandbox.run, Target.warm=True, {runtime}: a warm container",
            peer=cold, goal=Goal("p50_ms", 3.0, "p50 <= 3 ms") if goals else None),
    ]


def host_kernel() -> str:
    return Path("/proc/version").read_text().strip()


async def bare_run(image: str, runtime: str, request: bytes = WORK_REQUEST) -> bytes:
    """``docker run --rm -i`` of ``image`` fed ``request``; its stdout. Raises BenchError."""
    argv = ["docker", "run", "--rm", "-i", "--network", "none"]
    if runtime != "runc":
        argv += ["--runtime", runtime]
    proc = await asyncio.create_subprocess_exec(
        *argv, image, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(BARE_TIMEOUT_S):
            out, err = await proc.communicate(request)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BenchError(f"docker run of {image} took over {BARE_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        raise BenchError(f"docker run of {image} exited {proc.returncode}: {err[-300:].decode(errors='replace')}")
    return out


async def check_runtime(sandbox: DockerSandbox, target: Target, runtime: str, where: str) -> str:
    """The guest kernel a call of ``target`` saw; BenchError if it is not ``runtime``'s.

    Under runc a container shares the host kernel; under gVisor it sees gVisor's own.
    """
    result = await sandbox.run(target, KERNEL_REQUEST, LIMITS)
    if not result.ok:
        raise BenchError(f"{where}: the kernel probe failed: {result.error}")
    kernel = kernel_of(result.stdout, where)
    if (kernel == host_kernel()) != (runtime == "runc"):
        raise BenchError(f"{where}: asked for {runtime} but the guest saw kernel {kernel!r}")
    return kernel


async def measure_runtime(settings: Settings, runtime: str, rows: list[Row]) -> list[Row]:
    """Measure the cold, bare and warm rows (see :func:`runtime_rows`) under ``runtime``."""
    cold, bare, warm = rows
    isolation = None if runtime == "runc" else runtime
    cold_target = Target("python", str(TINY_APP), isolation=isolation, warm=False)
    warm_target = Target("python", str(TINY_APP), isolation=isolation, warm=True)
    async with DockerSandbox() as sandbox:  # the runtime is chosen per target: Target.isolation
        await sandbox.prepare(cold_target)
        await sandbox.prepare(warm_target)
        image = sandbox.image_of(cold_target)
        if image is None:
            raise BenchError("DockerSandbox.prepare left no image for the tiny app")
        cold.extra["image"] = bare.extra["image"] = image
        cold.extra["guest_kernel"] = await check_runtime(sandbox, cold_target, runtime, cold.name)
        check_work(await bare_run(image, runtime), bare.name)

        timings = TimingsMean()
        cold_call = sandbox_call(sandbox, cold_target, cold, timings, check=check_work, limits=LIMITS)

        async def bare_call() -> Verify:
            out = await bare_run(image, runtime)
            return lambda: check_work(out, bare.name)

        budget = settings.pick(Budget(40, 40.0, warmup=2), Budget(3, 10.0, warmup=1))
        cold.samples_ns, bare.samples_ns = await measure_interleaved([cold_call, bare_call], budget)
        cold.extra["timings_mean_ms"] = timings.means()

        warm_timings = TimingsMean()
        warm_call = sandbox_call(sandbox, warm_target, warm, warm_timings, check=check_work, limits=LIMITS)
        if await served_warm(warm_call, warm, tries=5, pause_s=0.5):
            warm.extra["guest_kernel"] = await check_runtime(sandbox, warm_target, runtime, warm.name)
            budget = settings.pick(Budget(500, 10.0, warmup=20), Budget(20, 3.0, warmup=3))
            warm.samples_ns = await measure(warm_call, budget)
            warm.extra["timings_mean_ms"] = warm_timings.means()
            warm.note = f"{warm.extra['served_warm']} of {warm.extra['calls']} calls served warm (Result.warm)"
        else:
            warm.mark("n/a", NOT_BUILT)
    return [cold, bare, warm]


async def run(settings: Settings) -> list[Row]:
    return await measure_runtime(settings, "runc", rows())
