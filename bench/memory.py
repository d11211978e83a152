"""Family ``memory``: a node process's memory while 50 Docker-sandboxed calls run at once.

Row ``memory.docker50``: :mod:`bench.memory_probe` in a fresh Python process imports
what a runtime node imports (``runtime.node``: bus client, HTTP server, history), opens a
``DockerSandbox``, warms up, then runs 50 calls of the tiny app concurrently
(``Target.warm=True``: the warm pool when the sandbox has one, else 50 fresh
containers). Goal: peak RSS < 500 MB, where the peak is ``VmHWM`` (the kernel's
high-water mark of the process's resident memory) and, as a cross-check, the largest
``VmRSS`` sampled every 5 ms during the calls. The n/p50/p95/p99 columns are the 50
calls' latencies, each from its start to its result, all started together, in a second
round (the first fills the pool, which is sized to hold 50 containers of the function).

Not counted: the Docker engine's own processes (dockerd, containerd, one shim per
container) and the containers themselves: they are the engine's memory, not the node's.
"""

from __future__ import annotations

import asyncio
import json
import sys

from bench.measure import BenchError, Settings
from bench.report import Goal, Row

FAMILY = "memory"
#: Longest the probe process may take (s).
PROBE_TIMEOUT_S = 150.0


def rows() -> list[Row]:
    return [Row("memory.docker50", FAMILY, "node RSS peak during 50 concurrent DockerSandbox.run calls",
                goal=Goal("peak_rss_mb", 500.0, "peak RSS < 500 MB"))]


async def run_probe(calls: int) -> dict[str, object]:
    """Run :mod:`bench.memory_probe` for ``calls`` calls; its JSON report."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.memory_probe", "--calls", str(calls),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BenchError(f"the memory probe took over {PROBE_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        raise BenchError(f"the memory probe exited {proc.returncode}: {err[-400:].decode(errors='replace')}")
    report: dict[str, object] = json.loads(out)
    return report


async def run(settings: Settings) -> list[Row]:
    (row,) = rows()
    calls = 10 if settings.quick else 50
    report = await run_probe(calls)
    errors = report.pop("errors")
    if errors:
        raise BenchError(f"calls failed during the memory probe: {errors}")
    latencies = report.pop("latencies_ns")
    assert isinstance(latencies, list)
    row.samples_ns = [int(x) for x in latencies]
    row.extra = report
    peaks = [report["vmhwm_mb"], report["rss_peak_sampled_mb"]]
    row.extra["peak_rss_mb"] = max(float(p) for p in peaks if isinstance(p, int | float))
    row.note = (f"peak RSS {row.extra['peak_rss_mb']:.1f} MB (before the calls {report['rss_before_mb']} MB); "
                f"{report['served_warm']} of {calls} calls served warm, pool {report['pool']}")
    if report["served_warm"] == 0:
        row.note += "; warm pool not built yet: every call ran in a fresh container"
    if calls != 50:
        row.name = f"memory.docker{calls}"
    return [row]
