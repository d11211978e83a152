"""Event ingest: how many events a second ``POST /e/dev`` takes, every one acknowledged.

The API answers 200 only after JetStream acknowledged every event of the request (see
docs/api.md), so each counted event is durably stored. The events are named
``bench/ingest``, which no function listens to: this measures the front door, not runs.

- *single*: one event per POST, ``SINGLE_CONNECTIONS`` keep-alive connections each
  sending its next POST as soon as the last one answered;
- *batched*: ``BATCH`` events per POST, ``BATCH_CONNECTIONS`` connections.

The client is a few lines of HTTP/1.1 over asyncio streams (a prepared request, read
the status line, headers and ``Content-Length`` body), far cheaper than a full HTTP
client, so on two cores it takes as little CPU as it can from the server it measures;
its CPU time is reported beside each figure. Both phases are bounded by a count and by
``CAP_S`` seconds; a non-200 answer stops the phase and is reported as its ``error``.

Then the *bus ceiling* (:func:`bus_ceiling`): how many event messages a second a fresh
``nats-server`` on the same file storage stores and acknowledges when nothing else runs,
the messages made beforehand by the node's own code and sent by the driver's fastest
path (atomic batches of 1,000, ``BATCH_CONNECTIONS`` at once). No HTTP, no parsing, no
scheduler reading them back: an upper bound for batched ingest on this machine.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

SINGLE_CONNECTIONS = 32
BATCH_CONNECTIONS = 4
BATCH = 1000
CAP_S = 20.0
#: Requests per phase: (single POSTs, batched POSTs), full and quick.
COUNTS = {False: (50_000, 400), True: (200, 3)}


async def measure(url: str, *, quick: bool) -> dict[str, Any]:
    singles, batches = COUNTS[quick]
    one = json.dumps({"name": "bench/ingest", "data": {"n": 1}}).encode()
    many = json.dumps([{"name": "bench/ingest", "data": {"n": i}} for i in range(BATCH)]).encode()
    return {
        "single": await _phase(url, one, 1, singles, SINGLE_CONNECTIONS),
        "batched": await _phase(url, many, BATCH, batches, BATCH_CONNECTIONS),
    }


async def bus_ceiling(*, quick: bool) -> dict[str, Any]:
    """Events a second a fresh nats-server stores and acks from the bus driver alone
    (see the module doc); ``error`` says why not, if it could not be measured. Run it
    with the node stopped: it measures the bus, not the bus beside a busy node."""
    _, batches = COUNTS[quick]
    body = json.dumps([{"name": "bench/ingest", "data": {"n": i}} for i in range(BATCH)]).encode()
    from bus.nats import NatsBus
    from bus.server import NatsServer
    from runtime.events import parse_events
    from runtime.limits import RuntimeLimits
    from runtime.streams import event_message, events_stream

    limits = RuntimeLimits()
    todo = [[event_message(ev) for ev in parse_events(body, limits)] for _ in range(batches)]
    events = sum(map(len, todo))
    acked = 0
    error: str | None = None
    with tempfile.TemporaryDirectory(prefix="sluice-bench-bus-") as tmp:
        async with NatsServer(f"{tmp}/nats") as server:
            bus = NatsBus(server.url)
            await bus.start()
            try:
                await bus.ensure_stream(events_stream(limits))
                deadline = time.monotonic() + CAP_S

                async def sender() -> None:
                    nonlocal acked, error
                    while todo and error is None and time.monotonic() < deadline:
                        msgs = todo.pop()
                        results = await bus.publish_many(msgs)
                        failed = [r for r in results if isinstance(r, Exception)]
                        if failed:
                            error = str(failed[0])[:300]
                        acked += len(results) - len(failed)

                started = time.perf_counter()
                await asyncio.gather(*(sender() for _ in range(BATCH_CONNECTIONS)))
                elapsed = time.perf_counter() - started
            finally:
                await bus.close()
    return {"events": acked, "of": events, "connections": BATCH_CONNECTIONS, "seconds": round(elapsed, 3),
            "events_per_s": round(acked / elapsed) if elapsed > 0 else None, "error": error}


def _request(host: str, port: int, body: bytes) -> bytes:
    head = (f"POST /e/dev HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response: its status and body. ``RuntimeError`` for a body without a length."""
    status_line = await reader.readline()
    parts = status_line.split()
    if len(parts) < 2:
        raise RuntimeError(f"the server closed the connection or sent {status_line[:100]!r}")
    length = None
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise RuntimeError("a response without Content-Length (this client reads no chunked bodies)")
    return int(parts[1]), await reader.readexactly(length)


async def _phase(url: str, body: bytes, per_request: int, requests: int, connections: int) -> dict[str, Any]:
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    request = _request(host, port, body)
    left = requests
    acked = 0
    error: str | None = None
    deadline = time.monotonic() + CAP_S

    async def worker() -> None:
        nonlocal left, acked, error
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while left > 0 and error is None and time.monotonic() < deadline:
                left -= 1
                writer.write(request)
                status, text = await asyncio.wait_for(_answer(reader), timeout=30)
                if status != 200:
                    error = f"{status} {text[:200]!r}"
                    return
                acked += per_request
        finally:
            writer.close()

    cpu, started = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(worker() for _ in range(connections)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures and error is None:
        error = f"{type(failures[0]).__name__}: {failures[0]}"[:300]
    return {"events": acked, "per_request": per_request, "connections": connections,
            "seconds": round(elapsed, 3), "events_per_s": round(acked / elapsed) if elapsed > 0 else None,
            "client_cpu_s": round(cpu, 2), "error": error}
