"""``python -m bench.memory_probe --calls N``: a node-like process's memory under N concurrent Docker calls.

Run in its own process by :mod:`bench.memory`, so its peak (``VmHWM``) is the peak of a
process that does nothing but drive the Docker sandbox: not inflated by whatever the
benchmark harness did before (compiling CPython for WASI takes hundreds of MB).

What it does: import what a runtime node imports (:data:`NODE_MODULE`), open a
:class:`DockerSandbox` (with its warm pool sized for ``N`` containers per function when
the driver has a pool), make a few sequential calls of the tiny app, then two rounds of
``N`` calls started at once: the first fills the pool, the second is the one whose
latencies are reported. ``VmRSS`` is sampled every :data:`SAMPLE_S` seconds on a thread
throughout both rounds. Prints one JSON object::

    {"calls": N, "warm_target": bool, "pool": str, "imports": str,
     "served_warm": int (second round), "latencies_ns": [...] (second round),
     "rss_before_mb": float, "rss_peak_sampled_mb": float, "vmhwm_mb": float,
     "errors": [str, ...]}

Exits 1 (with the reason on stderr) if the sandbox cannot be prepared.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import inspect
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
#: Imported first, so the baseline is a node's (runtime, bus client, HTTP server), not a bare script's.
NODE_MODULE = "runtime.node"


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


def make_sandbox(calls: int) -> tuple[DockerSandbox, str]:
    """A sandbox whose warm pool (if the driver has one) may hold ``calls`` containers
    of one function; and how its pool was configured, for the report."""
    if "pool" not in inspect.signature(DockerSandbox).parameters:
        return DockerSandbox(), "none"
    try:
        from sandboxes._docker_pool import PoolConfig  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return DockerSandbox(), "default"
    fields = {f.name for f in dataclasses.fields(PoolConfig)}
    if "max_per_key" not in fields:
        return DockerSandbox(), "default"
    config = PoolConfig(max_per_key=calls)
    return DockerSandbox(pool=config), f"max_per_key={calls}"  # type: ignore[call-arg,unused-ignore]


def node_imports() -> str:
    """Import what a runtime node imports (its baseline memory); what was imported, or why not."""
    try:
        importlib.import_module(NODE_MODULE)
    except Exception as exc:  # a half-built runtime must not stop the memory probe
        return f"none ({NODE_MODULE}: {type(exc).__name__}: {exc})"[:200]
    return NODE_MODULE


async def probe(calls: int, warm: bool) -> dict[str, object]:
    imported = node_imports()
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

    sandbox, pool = make_sandbox(calls)
    async with sandbox:
        await sandbox.prepare(target)
        for _ in range(3):
            await one()
        before = status_mb("VmRSS")
        sampler = Sampler()
        sampler.start()
        try:
            await asyncio.gather(*(one() for _ in range(calls)))  # fills a warm pool
            await asyncio.sleep(0.5)  # containers return to the pool after the answer
            served_warm = 0
            latencies = await asyncio.gather(*(one() for _ in range(calls)))
        finally:
            sampler.stop.set()
            sampler.join()
    return {
        "calls": calls, "warm_target": warm, "pool": pool, "imports": imported, "served_warm": served_warm,
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
