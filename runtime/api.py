"""The HTTP API (DESIGN §3.1): events in, runs and events out, health.

``POST /e/{key}`` checks the whole body first (:mod:`runtime.events`), then publishes
every event to the EVENTS stream (its id as the dedupe key) and answers 200 only once
JetStream has acknowledged them all. Requests that arrive together are published
together (:class:`Coalescer`: one ``publish_many`` call, one write to NATS), and each
is answered from its own events' acknowledgements. Reads come from the history store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import structlog
from aiohttp import web

from bus import Bus, BusError, OutMsg, PubAck
from runtime.events import EventError, parse_events
from runtime.history import History
from runtime.limits import RuntimeLimits
from runtime.operations import Operations, RunNotFound
from runtime.registry import Registry
from runtime.streams import event_message

log = structlog.get_logger("sluice.api")

REQUEST_BYTES = web.AppKey("request_bytes", int)
RUN_STATUSES = ("queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=repr)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, dumps=_dumps)


def _ok(body: Any) -> web.Response:
    return web.json_response(body, dumps=_dumps)


#: The bytes a JSON string holds as they are: printable ASCII but ``\`` (``"`` is counted apart).
_PLAIN = bytes(c for c in range(0x20, 0x7F) if c != 0x5C)


def _ids_answer(ids: list[str]) -> bytes:
    """``{"ids":[...],"status":200}``, byte for byte as compact ``json.dumps`` writes it.

    Joined directly when no id needs escaping (printable ASCII without ``"`` or ``\\``,
    as every id the node makes), a few times cheaper than ``json.dumps``.
    """
    joined = '","'.join(ids)
    if joined.isascii():
        plain = joined.encode()
        if not plain.translate(None, _PLAIN) and plain.count(b'"') == 2 * len(ids) - 2:
            return b'{"ids":["' + plain + b'"],"status":200}'
    return json.dumps({"ids": ids, "status": 200}, separators=(",", ":")).encode()


class Coalescer:
    """Publishes the messages of callers that arrive together with one
    :meth:`bus.base.Publisher.publish_many` call, and gives each caller the outcomes of
    its own messages (in order).

    A call starts when none is waiting for acknowledgements, or when ``big`` messages
    or more are waiting (then up to ``in_flight`` calls overlap). The caller that can
    start one schedules it with ``call_soon``, so the callers the loop runs before it
    (the other requests read in that turn) join it; otherwise the next call starts as
    soon as one finishes and takes everyone waiting. So an idle node publishes a lone
    event at once, a busy one publishes single events in bigger batches (fewer writes
    to NATS, fewer wake-ups: measured, this doubles single-event ingest), and large
    requests still overlap their publishing with reading the next ones. A caller that
    is cancelled while waiting leaves its messages to be published (as a client that
    goes away after sending would).
    """

    def __init__(self, bus: Bus, *, big: int = 500, in_flight: int = 4) -> None:
        self._bus = bus
        self._big = big
        self._in_flight = in_flight
        self._waiting_msgs = 0
        self._waiting: list[tuple[Sequence[OutMsg], asyncio.Future[list[PubAck | BusError]]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: Counters for tests and logs: publish_many calls made, messages they carried.
        self.calls = 0
        self.messages = 0

    async def publish(self, msgs: Sequence[OutMsg]) -> list[PubAck | BusError]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[PubAck | BusError]] = loop.create_future()
        self._waiting.append((msgs, future))
        self._waiting_msgs += len(msgs)
        self._schedule()
        return await future

    def _schedule(self) -> None:
        """Start a call at the loop's next turn, if none is scheduled and one may start."""
        if self._waiting and not self._scheduled and self._may_start():
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _may_start(self) -> bool:
        busy = len(self._tasks)
        return busy == 0 or (busy < self._in_flight and self._waiting_msgs >= self._big)

    def _start(self) -> None:
        self._scheduled = False
        if not self._waiting or not self._may_start():
            return
        turn, self._waiting = self._waiting, []
        self._waiting_msgs = 0
        task = asyncio.ensure_future(self._publish(turn))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._schedule()

    async def _publish(self, turn: list[tuple[Sequence[OutMsg], asyncio.Future[list[PubAck | BusError]]]]) -> None:
        msgs = [m for part, _ in turn for m in part]
        self.calls += 1
        self.messages += len(msgs)
        try:
            results: list[PubAck | BusError] = await self._bus.publish_many(msgs)
        except BusError as exc:
            results = [exc] * len(msgs)
        except BaseException as exc:
            for _, future in turn:
                if not future.done():
                    future.set_exception(exc)
            raise
        at = 0
        for part, future in turn:
            if not future.done():
                future.set_result(results[at:at + len(part)])
            at += len(part)


class Api:
    """Routes bound to one node's bus, history and registry.

    ``event_keys``: ``None`` accepts any key (the dev server, like Inngest's);
    otherwise only those keys may send events (401 for others).
    """

    def __init__(self, bus: Bus, history: History, registry: Registry, limits: RuntimeLimits,
                 operations: Operations, *, event_keys: Collection[str] | None = None,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self._bus = bus
        self._history = history
        self._registry = registry
        self._limits = limits
        self._ops = operations
        self._keys = None if event_keys is None else frozenset(event_keys)
        self._ready = ready
        self.ingest = Coalescer(bus)

    def app(self) -> web.Application:
        # Bodies are size-checked by us (to answer with a JSON 413), so let aiohttp
        # read a little past the request limit.
        app = web.Application(client_max_size=self._limits.request_bytes + 1024,
                              middlewares=[_json_errors])
        app[REQUEST_BYTES] = self._limits.request_bytes
        app.add_routes([
            web.post("/e/{key}", self.post_events),
            web.get("/v1/events", self.list_events),
            web.get("/v1/events/{id}", self.get_event),
            web.get("/v1/runs", self.list_runs),
            web.get("/v1/runs/{id}", self.get_run),
            web.post("/v1/runs/cancel", self.cancel_runs),
            web.post("/v1/runs/{id}/cancel", self.cancel_run),
            web.post("/v1/runs/{id}/replay", self.replay_run),
            web.get("/v1/functions", self.list_functions),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
        ])
        return app

    async def post_events(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if self._keys is not None and key not in self._keys:
            return _error(401, "unknown event key")
        if request.content_length is not None and request.content_length > self._limits.request_bytes:
            return _error(413, f"request body is {request.content_length} bytes; "
                               f"the limit is {self._limits.request_bytes}")
        body = await request.read()
        try:
            events = parse_events(body, self._limits)
        except EventError as exc:
            return _error(exc.status, exc.message)
        results = await self.ingest.publish([event_message(ev) for ev in events])
        for result in results:
            if isinstance(result, BusError):
                failed = sum(isinstance(r, BusError) for r in results)
                log.error("could not store events", error=str(result), count=len(events), failed=failed)
                return _error(503, f"events not stored: {result}")
        return web.Response(body=_ids_answer([ev["id"] for ev in events]), content_type="application/json",
                            charset="utf-8")

    async def list_events(self, request: web.Request) -> web.Response:
        limit = _limit(request)
        rows, cursor = await self._history.list_events(
            name=request.query.get("name") or None, limit=limit, cursor=request.query.get("cursor") or None)
        return _ok({"data": rows, "cursor": cursor})

    async def get_event(self, request: web.Request) -> web.Response:
        event = await self._history.get_event(request.match_info["id"])
        if event is None:
            return _error(404, f"no event {request.match_info['id']}")
        return _ok({"data": event})

    async def list_runs(self, request: web.Request) -> web.Response:
        status = request.query.get("status") or None
        if status is not None and status not in RUN_STATUSES:
            return _error(400, f"status must be one of {', '.join(RUN_STATUSES)}")
        rows, cursor = await self._history.list_runs(
            function=request.query.get("function") or None, status=status, limit=_limit(request),
            cursor=request.query.get("cursor") or None)
        return _ok({"data": rows, "cursor": cursor})

    async def get_run(self, request: web.Request) -> web.Response:
        run = await self._history.get_run(request.match_info["id"])
        if run is None:
            return _error(404, f"no run {request.match_info['id']}")
        return _ok({"data": run})

    async def cancel_run(self, request: web.Request) -> web.Response:
        try:
            row = await self._ops.cancel(request.match_info["id"])
        except RunNotFound:
            return _error(404, f"no run {request.match_info['id']}")
        return _ok({"data": row})

    async def cancel_runs(self, request: web.Request) -> web.Response:
        """Bulk cancel: {"function": "app/fn", "from": ms, "to": ms} (times optional, on created_at)."""
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError as exc:
            return _error(400, f"request body is not valid JSON: {exc}")
        if not isinstance(body, dict) or not isinstance(body.get("function"), str) or not body["function"]:
            return _error(400, 'send {"function": "app/fn", "from": ms, "to": ms} (from and to are optional)')
        for field in ("from", "to"):
            value = body.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                return _error(400, f"{field} must be ms since the epoch (an integer)")
        ids = await self._ops.cancel_many(body["function"], from_ms=body.get("from"), to_ms=body.get("to"))
        return _ok({"data": {"cancelled": len(ids), "ids": ids}})

    async def replay_run(self, request: web.Request) -> web.Response:
        body: Any = {}
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                return _error(400, f"request body is not valid JSON: {exc}")
            if not isinstance(body, dict):
                return _error(400, "request body must be a JSON object, e.g. {\"from_step\": \"<step id>\"}")
        from_step = body.get("from_step")
        if from_step is not None and not isinstance(from_step, str):
            return _error(400, "from_step must be a step id (a string)")
        try:
            row = await self._ops.replay(request.match_info["id"], from_step=from_step)
        except RunNotFound:
            return _error(404, f"no run {request.match_info['id']}")
        return _ok({"data": row})

    async def list_functions(self, request: web.Request) -> web.Response:
        return _ok({"data": [fn.describe() for fn in self._registry.all()]})

    async def healthz(self, request: web.Request) -> web.Response:
        return _ok({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if not self._ready():
            return _error(503, "not ready")
        return _ok({"status": "ready"})


class _BadQuery(Exception):
    pass


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    try:
        value = int(raw)
    except ValueError:
        raise _BadQuery(f"limit must be an integer from 1 to 1000, not {raw!r}") from None
    if not 1 <= value <= 1000:
        raise _BadQuery(f"limit must be an integer from 1 to 1000, not {raw!r}")
    return value


@web.middleware
async def _json_errors(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every error the API gives is JSON with a message, including aiohttp's own."""
    try:
        return await handler(request)
    except _BadQuery as exc:
        return _error(400, str(exc))
    except ValueError as exc:  # e.g. a malformed cursor
        return _error(400, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"request body is over the limit of {request.app[REQUEST_BYTES]} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise
