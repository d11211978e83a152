"""Family ``durable``: the per-step overhead of a ten-step no-op function, end to end.

A real node in this process — embedded nats-server (file storage), SQLite history, the
WASM sandbox running ``bench/apps/tensteps`` on CPython-on-WASI — takes one event at a
time; a sample is the run's recorded ``ended_at - created_at`` (accepted → complete, ms)
divided by its ten steps.

Rows:

* ``durable.step.checkpointed`` — ``checkpoint=True``: consecutive steps share sandbox
  calls, each output still recorded; peer: the plain function.
* ``durable.step.plain`` — one sandbox call per step (eleven calls a run).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.measure import Settings
from bench.report import Row
from bus.nats import NatsBus
from bus.server import NatsServer
from runtime.history import History
from runtime.ids import new_id
from runtime.logs import configure
from runtime.node import Node, NodeConfig
from runtime.registry import discover
from runtime.streams import event_message
from sandboxes.wasm import WasmSandbox

FAMILY = "durable"
APP = Path(__file__).resolve().parent / "apps" / "tensteps"
STEPS = 10


def rows() -> list[Row]:
    return [
        Row("durable.step.checkpointed", FAMILY, "ten-step no-op function, checkpoint=True: ms a step, "
            "accepted -> complete / 10, WASM sandbox, JetStream on file", peer="durable.step.plain"),
        Row("durable.step.plain", FAMILY, "the same without checkpointing: one sandbox call a step"),
    ]


async def _one_run(node: Node, name: str, deadline_s: float) -> int:
    """Send one event and return the ns a step of its run took (accepted -> complete / 10)."""
    event_id = new_id()
    event: dict[str, object] = {"id": event_id, "name": name, "data": {}, "ts": int(time.time() * 1000), "user": {}}
    await node.bus.publish_batch([event_message(event)])
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        found = await node.history.get_event(event_id)
        runs = found["runs"] if found else []
        if runs and runs[0]["status"] in ("completed", "failed"):
            run = runs[0]
            if run["status"] != "completed" or run["output"] != sum(range(STEPS)):
                raise RuntimeError(f"run {run['id']} ended {run['status']}: {run.get('error')}")
            return int((run["ended_at"] - run["created_at"]) * 1_000_000 / STEPS)
        await asyncio.sleep(0.005)
    raise RuntimeError(f"a {name} run did not finish in {deadline_s} s")


async def run(settings: Settings) -> list[Row]:
    configure(level="warning")  # the node's logs go to stderr, and only warnings: the table owns stdout
    checkpointed, plain = rows()
    count = 3 if settings.quick else 20
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        server = NatsServer(Path(tmp) / "nats")
        await server.start()
        try:
            node = Node(NodeConfig(port=0, roles=("scheduler", "executor")), bus=NatsBus(server.url),
                        history=History(f"sqlite:///{tmp}/history.db"), sandboxes={"wasm": WasmSandbox()})
            await node.start(discover(APP, "wasm"))
            try:
                for row, name in ((plain, "bench/plain"), (checkpointed, "bench/checkpointed")):
                    await _one_run(node, name, 60)  # warm-up
                    row.samples_ns = [await _one_run(node, name, 60) for _ in range(count)]
            finally:
                await node.stop()
        finally:
            await server.stop()
    return [checkpointed, plain]
