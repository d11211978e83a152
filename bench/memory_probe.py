"""``python -m bench.memory_probe --calls N``: a node-like process's memory under N concurrent Docker calls.

Run in its own process by :mod:`bench.memory`, so its peak (``VmHWM``) is the peak of a
process that does nothing but drive the Docker sandbox: not inflated by whatever the
benchmark harness did before (compiling CPython for WASI takes hundreds of MB).

What it does: open a :class:`DockerSandbox`, make a few sequential calls of the tiny
app (warm-up, and time for a warm pool to fill), then start ``N`` calls at once and
wait for all of them, sampling ``VmRSS`` every :data:`SAMPLE_S` seconds on a thread.
Prints one JSON object on stdout::

    {"calls": N, "warm_target": bool, "served_warm": int, "latencies_ns": [...],
     "rss_before_mb": float, "rss_peak_sampled_mb": float, "vmhwm_mb": float,
     "errors": [str, ...]}

Exits 1 (with the reason on stderr) if the sandbox cannot be prepared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

from bench.guests import TINY_APP, WORK_REQUEST, check_work
from bench.measure import BenchError
from sandboxes.base import Limits, SandboxError, Target
from sandboxes.docker import DockerSandbox

#: How often VmRSS is sampled while the calls run (s).
SAMPLE_S = 0.005
LIMITS = Limits(memory_mb=128, timeout_s=60.0)


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` field (``VmRSS``, ``VmHWM``) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


class Sampler(threading.Thread):
    """Samples VmRSS every SAMPLE_S seconds until stopped; keeps the largest."""

    def __init__(self) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.peak_mb = status_mb("VmRSS")
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            self.peak_mb = max(self.peak_mb, status_mb("VmRSS"))


async def probe(calls: int, warm: bool) -> dict[str, object]:
    target = Target("python", str(TINY_APP), warm=warm)
    errors: list[str] = []
    served_warm = 0

    async def one() -> int:
        nonlocal served_warm
        start = time.perf_counter_ns()
        result = await sandbox.run(target, WORK_REQUEST, LIMITS)
        took = time.perf_counter_ns() - start
        try:
            if not result.ok:
                raise BenchError(f"guest failed: {result.error}")
            check_work(result.stdout, "memory probe")
        except BenchError as exc:
            errors.append(str(exc))
        served_warm += int(result.warm)
        return took

    async with DockerSandbox() as sandbox:
        await sandbox.prepare(target)
        for _ in range(3):
            await one()
        await asyncio.sleep(1.0 if warm else 0)  # a warm pool may fill in the background
        served_warm = 0
        before = status_mb("VmRSS")
        sampler = Sampler()
        sampler.start()
        try:
            latencies = await asyncio.gather(*(one() for _ in range(calls)))
        finally:
            sampler.stop.set()
            sampler.join()
    return {
        "calls": calls, "warm_target": warm, "served_warm": served_warm,
        "latencies_ns": list(latencies), "rss_before_mb": round(before, 1),
        "rss_peak_sampled_mb": round(sampler.peak_mb, 1), "vmhwm_mb": round(status_mb("VmHWM"), 1),
        "errors": errors[:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_probe")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--cold", action="store_true", help="Target.warm=False (default: warm)")
    args = parser.parse_args()
    if not 1 <= args.calls <= 500:
        parser.error("--calls must be within 1-500")
    try:
        report = asyncio.run(probe(args.calls, warm=not args.cold))
    except SandboxError as exc:
        print(f"memory probe: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
