"""Family ``gvisor``: the ``docker`` family's rows under gVisor (``Target.isolation="runsc"``).

Rows ``gvisor.cold`` (peer ``gvisor.bare``), ``gvisor.bare`` (``docker run --runtime
runsc``) and ``gvisor.warm`` (peer ``gvisor.cold``); issue 3 sets no goals for them.
When the engine has no ``runsc`` runtime registered, every row is ``n/a`` (register it
with ``scripts/docker-engine.sh --gvisor``, which ``make bench`` runs).

Each row checks once that its guest really ran under gVisor (the guest's
``/proc/version`` differs from the host's).
"""

from __future__ import annotations

import asyncio

from bench import docker_steps
from bench.machine import docker_info
from bench.measure import Settings
from bench.report import Row

FAMILY = "gvisor"
RUNTIME = "runsc"


def rows() -> list[Row]:
    return docker_steps.runtime_rows(FAMILY, RUNTIME, goals=False)


async def run(settings: Settings) -> list[Row]:
    planned = rows()
    runtimes = (await asyncio.to_thread(docker_info))["runtimes"]
    if RUNTIME not in runtimes:
        note = f"n/a: the Docker engine has no {RUNTIME} runtime (has: {', '.join(runtimes) or 'none'})"
        return [row.mark("n/a", note) for row in planned]
    return await docker_steps.measure_runtime(settings, RUNTIME, planned)
