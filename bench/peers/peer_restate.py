"""The workload on Restate 1.7.12 with the ``restate-sdk`` Python SDK.

Run by the driver in the peers' venv: ``python -m bench.peers.peer_restate --out FILE``.
Starts ``restate-server`` (the binary the npm package ``@restatedev/restate-server``
ships; default configuration but for its addresses, all on 127.0.0.1, and JSON logs),
serves :mod:`bench.peers.restate_service` with hypercorn (one process), registers it,
runs warm-up, burst and unloaded phases, stops both.

Times: *accepted* is when ``POST /Bench/run/send`` answered (the invocation is in
Restate's log); *first step* is the first ``ctx.run``'s ``time.time()`` from the
invocation's output; *complete* is ``completed_at`` (ms) from ``sys_invocation``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.peers.common import (
    ROOT,
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

VERSION = "1.7.12"
DURABILITY = ("durable: every invocation and each ctx.run result appended to Restate's log (replicated loglet, "
              "one node, RocksDB WAL fsync on: the default) before the next step; no sandbox")
WARMUP_RUNS = 5
HTTP_TIMEOUT_S = 30.0


def server_binary() -> Path:
    import os

    peers = Path(os.environ.get("BENCH_PEERS_DIR", ROOT / ".cache" / "peers"))
    return peers / "npm" / "node_modules" / "@restatedev" / "restate-server-linux-x64" / "bin" / "restate-server"


def measure(settings: Settings, report: dict[str, Any]) -> None:
    binary = server_binary()
    report.update(version=f"restate-server {VERSION}, restate-sdk (Python)", durability=DURABILITY,
                  durability_short="log + RocksDB, fsync")
    if not binary.exists():
        report.update(status="n/a", reason=f"{binary} is missing: npm install @restatedev/restate-server@{VERSION}")
        return
    from importlib.metadata import version

    report["version"] = f"restate-server {VERSION}, restate-sdk {version('restate-sdk')}"
    ports = {name: free_port() for name in ("ingress", "admin", "node", "service")}
    with tempfile.TemporaryDirectory(prefix="bench-restate-") as tmp, Path(tmp, "servers.log").open("ab") as log:
        config = Path(tmp, "restate.toml")
        # Telemetry off; logs as JSON warnings only (the pretty default costs CPU on a 2-core box).
        config.write_text('disable-telemetry = true\nlog-format = "json"\nlog-filter = "warn"\n')
        server = service = None
        try:
            server = spawn([str(binary), "--no-logo", "-c", str(config), "--base-dir", str(Path(tmp, "data")),
                            "--node-name", "bench"], log, env={
                "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{ports['ingress']}",
                "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{ports['admin']}",
                "RESTATE_BIND_ADDRESS": f"127.0.0.1:{ports['node']}",
                "RESTATE_LISTEN_MODE": "tcp", "DO_NOT_TRACK": "1"})
            service = spawn([sys.executable, "-m", "hypercorn", "-b", f"127.0.0.1:{ports['service']}",
                             "bench.peers.restate_service:app"], log)
            for name in ("admin", "ingress"):
                wait_port(ports[name], timeout_s=60, proc=server, what=f"restate-server ({name})")
            wait_port(ports["service"], timeout_s=30, proc=service, what="the Restate service (hypercorn)")
            asyncio.run(_phases(settings, report, ports))
            report["notes"].append("service: one hypercorn process (HTTP/2), the SDK's defaults")
        finally:
            stop(service)
            stop(server, grace_s=20)


async def _phases(settings: Settings, report: dict[str, Any], ports: dict[str, int]) -> None:
    import aiohttp

    ingress = f"http://127.0.0.1:{ports['ingress']}"
    admin = f"http://127.0.0.1:{ports['admin']}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=settings.in_flight)) as http:
        await _register(http, admin, f"http://127.0.0.1:{ports['service']}")
        client = _Client(http, ingress, admin)
        await _unloaded(client, WARMUP_RUNS)
        report["burst"] = median_burst([await _burst(client, settings) for _ in range(settings.bursts)])
        report["unloaded"] = await _unloaded(client, settings.unloaded)


async def _register(http: Any, admin: str, uri: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            async with http.post(f"{admin}/deployments", json={"uri": uri}) as resp:
                last = f"{resp.status} {(await resp.text())[:300]}"
                if resp.status in (200, 201):
                    return
        except OSError as exc:
            last = str(exc)
        await asyncio.sleep(0.5)
    raise RuntimeError(f"could not register the service with Restate: {last}")


class _Client:
    def __init__(self, http: Any, ingress: str, admin: str) -> None:
        self.http, self.ingress, self.admin = http, ingress, admin

    async def send(self) -> str:
        async with self.http.post(f"{self.ingress}/Bench/run/send", json={}) as resp:
            body = await resp.json(content_type=None)
            if resp.status not in (200, 202):
                raise RuntimeError(f"POST /Bench/run/send: {resp.status} {body}")
            return str(body["invocationId"])

    async def attach(self, invocation: str, timeout_s: float) -> dict[str, Any] | None:
        """The invocation's output once it completed; ``None`` on failure or time-out."""
        try:
            async with self.http.get(f"{self.ingress}/restate/invocation/{invocation}/attach",
                                     timeout=_timeout(timeout_s)) as resp:
                body = await resp.json(content_type=None)
                return dict(body) if resp.status == 200 else None
        except TimeoutError:
            return None

    async def completed_at(self) -> dict[str, float]:
        """Invocation id -> when Restate recorded it completed (s since the epoch)."""
        query = "SELECT id, completed_at FROM sys_invocation WHERE target_service_name = 'Bench'"
        async with self.http.post(f"{self.admin}/query", json={"query": query},
                                  headers={"accept": "application/json"}, timeout=_timeout(HTTP_TIMEOUT_S)) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"POST /query: {resp.status} {body}")
        return {row["id"]: _epoch(row["completed_at"]) for row in body["rows"] if row.get("completed_at")}


def _timeout(seconds: float) -> Any:
    import aiohttp

    return aiohttp.ClientTimeout(total=seconds)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _burst(client: _Client, settings: Settings) -> dict[str, Any]:
    gate = asyncio.Semaphore(settings.in_flight)
    samples: dict[str, Sample] = {}

    async def one() -> None:
        async with gate:
            invocation = await client.send()
            samples[invocation] = Sample(accepted=time.time())

    started = time.time()
    await asyncio.gather(*(one() for _ in range(settings.burst)))
    submitted = time.time()
    outputs = await _wait_all(client, list(samples), settings)
    _fill(samples, outputs, await client.completed_at())
    return burst_report(list(samples.values()), started, submitted)


async def _wait_all(client: _Client, invocations: list[str], settings: Settings) -> dict[str, dict[str, Any] | None]:
    gate = asyncio.Semaphore(settings.in_flight)
    deadline = time.monotonic() + settings.wait_s

    async def one(invocation: str) -> tuple[str, dict[str, Any] | None]:
        async with gate:
            return invocation, await client.attach(invocation, max(0.1, deadline - time.monotonic()))

    return dict(await asyncio.gather(*(one(i) for i in invocations)))


def _fill(samples: dict[str, Sample], outputs: dict[str, dict[str, Any] | None], done: dict[str, float]) -> None:
    for invocation, sample in samples.items():
        output = outputs.get(invocation)
        if output is not None and invocation in done:
            sample.first_step = float(output["t0"])
            sample.complete = done[invocation]


async def _unloaded(client: _Client, count: int) -> dict[str, Any]:
    samples: dict[str, Sample] = {}
    outputs: dict[str, dict[str, Any] | None] = {}
    for _ in range(count):
        invocation = await client.send()
        samples[invocation] = Sample(accepted=time.time())
        outputs[invocation] = await client.attach(invocation, 30.0)
    _fill(samples, outputs, await client.completed_at())
    return unloaded_report(list(samples.values()))


if __name__ == "__main__":
    sys.exit(peer_main(sys.argv[1:], "restate", f"Restate {VERSION}", measure))
