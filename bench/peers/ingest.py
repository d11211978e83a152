"""Event ingest: how many events a second ``POST /e/dev`` takes, every one acknowledged.

The API answers 200 only after JetStream acknowledged every event of the request (see
docs/api.md), so each counted event is durably stored. The events are named
``bench/ingest``, which no function listens to: this measures the front door, not runs.

- *single*: one event per POST, ``SINGLE_CONNECTIONS`` keep-alive connections each
  sending its next POST as soon as the last one answered;
- *batched*: ``BATCH`` events per POST, ``BATCH_CONNECTIONS`` connections.

Both are bounded by a count and by ``CAP_S`` seconds; a non-200 answer stops the phase
and is reported as its ``error``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

SINGLE_CONNECTIONS = 32
BATCH_CONNECTIONS = 4
BATCH = 1000
CAP_S = 20.0
#: Requests per phase: (single POSTs, batched POSTs), full and quick.
COUNTS = {False: (20_000, 200), True: (200, 3)}


async def measure(session: aiohttp.ClientSession, url: str, *, quick: bool) -> dict[str, Any]:
    singles, batches = COUNTS[quick]
    one = json.dumps({"name": "bench/ingest", "data": {"n": 1}}).encode()
    many = json.dumps([{"name": "bench/ingest", "data": {"n": i}} for i in range(BATCH)]).encode()
    return {
        "single": await _phase(session, url, one, 1, singles, SINGLE_CONNECTIONS),
        "batched": await _phase(session, url, many, BATCH, batches, BATCH_CONNECTIONS),
    }


async def _phase(session: aiohttp.ClientSession, url: str, body: bytes, per_request: int, requests: int,
                 connections: int) -> dict[str, Any]:
    left = requests
    acked = 0
    error: str | None = None
    deadline = time.monotonic() + CAP_S
    headers = {"content-type": "application/json"}

    async def worker() -> None:
        nonlocal left, acked, error
        while left > 0 and error is None and time.monotonic() < deadline:
            left -= 1
            async with session.post(f"{url}/e/dev", data=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=30)) as resp:
                text = await resp.read()
                if resp.status != 200:
                    error = f"{resp.status} {text[:200]!r}"
                    return
                acked += per_request

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {"events": acked, "per_request": per_request, "connections": connections,
            "seconds": round(elapsed, 3), "events_per_s": round(acked / elapsed) if elapsed > 0 else None,
            "error": error}
