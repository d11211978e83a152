"""The workload as a Temporal workflow, and its worker (in the peers' venv).

``BenchWorkflow`` runs three activities one after another (each scheduled, run by the
worker and recorded in the workflow's history before the next); it returns ``{"t0",
"t2"}`` like the Sluice function. ``python -m bench.peers.temporal_app ADDRESS`` runs
a worker with the SDK's defaults on task queue ``bench`` until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import timedelta

from temporalio import activity, workflow  # type: ignore[import-not-found, unused-ignore]

TASK_QUEUE = "bench"
STEP_TIMEOUT = timedelta(seconds=60)


@activity.defn  # type: ignore[untyped-decorator, unused-ignore]
async def now() -> float:
    return time.time()


@activity.defn  # type: ignore[untyped-decorator, unused-ignore]
async def noop() -> None:
    return None


@workflow.defn  # type: ignore[untyped-decorator, unused-ignore]
class BenchWorkflow:
    @workflow.run  # type: ignore[untyped-decorator, unused-ignore]
    async def run(self) -> dict[str, float]:
        t0 = await workflow.execute_activity(now, start_to_close_timeout=STEP_TIMEOUT)
        await workflow.execute_activity(noop, start_to_close_timeout=STEP_TIMEOUT)
        t2 = await workflow.execute_activity(now, start_to_close_timeout=STEP_TIMEOUT)
        return {"t0": t0, "t2": t2}


async def serve(address: str) -> None:
    from temporalio.client import Client  # type: ignore[import-not-found, unused-ignore]
    from temporalio.worker import Worker  # type: ignore[import-not-found, unused-ignore]

    client = await Client.connect(address)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    worker = Worker(client, task_queue=TASK_QUEUE, workflows=[BenchWorkflow], activities=[now, noop])
    async with worker:
        print("worker ready", flush=True)
        await stopping.wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
