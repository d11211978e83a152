"""History: events, runs and step attempts, kept for people to query.

Run *state* lives in JetStream KV; this is the record a user reads: what happened,
when, with what output. Writes cost the caller microseconds — they are serialized to
JSON, queued, and committed in batches by one writer thread
(:mod:`runtime._history_writer`) — so recording never blocks the executor's hot path.
Reads run on their own connections in two reader threads. WAL mode lets them read
while the writer commits. All SQL is in :mod:`runtime._history_sql`.

URLs: ``sqlite:///abs/path.db`` (``sqlite:////abs/path.db`` too), ``sqlite://:memory:``
or a plain file path. Times are ints, ms since the epoch. Outputs, errors and event
data are stored as JSON text; a value that is not JSON-able is stored as its ``repr``.

Usage::

    async with History("sqlite:///var/lib/sluice/history.db") as history:
        await history.record_run({...})
        await history.flush()          # only needed to read your own writes at once
        rows, cursor = await history.list_runs(status="failed")
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from runtime import _history_rows as rows
from runtime import _history_sql as sql
from runtime._history_writer import Writer

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
READERS = 2
# Queued writes past which a writer call waits for the writer to catch up, so a
# writer that falls behind slows its callers instead of growing memory without end.
HIGH_WATER = 50_000
MAX_LIMIT = 1000


def parse_url(url: str) -> str:
    """The SQLite database path in ``url`` (``":memory:"`` for memory).

    ``ValueError`` naming the URL (password hidden) for anything else.
    """
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://"):]
        if rest in (":memory:", "/:memory:"):
            return ":memory:"
        if rest.startswith("/") and rest.strip("/"):
            return "/" + rest.lstrip("/")
        raise ValueError(f"history URL {url!r} has no absolute path: use sqlite:///absolute/path.db "
                         "or sqlite://:memory:")
    if not url or "://" in url:
        raise ValueError(f"history URL {_redact(url)!r} is not supported: use sqlite:///absolute/path.db, "
                         "sqlite://:memory: or a file path")
    return url


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if sep and at and ":" in userinfo:
        return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
    return url


class History:
    """The history store. ``start`` before use; ``close`` (safe twice) commits what is queued."""

    def __init__(self, url: str) -> None:
        path = parse_url(url)
        self._memory = path == ":memory:"
        # One named in-memory database, shared by the writer's and the readers' connections.
        self._path = f"file:sluice-history-{uuid.uuid4().hex}?mode=memory&cache=shared" if self._memory else path
        self._writer: Writer | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._keepalive: sqlite3.Connection | None = None
        self._state = "new"  # new -> started -> closing -> closed
        self._closing: asyncio.Future[None] | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, uri=self._memory, check_same_thread=False, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return conn

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database and create its schema. ``RuntimeError`` naming the path if it cannot."""
        if self._state == "started":
            return
        if self._state == "closed":
            raise RuntimeError("history is closed; make a new History")
        await asyncio.to_thread(self._open)
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="sluice-history-read")
        self._writer = Writer(self._connect)
        self._writer.start()
        self._state = "started"

    def _open(self) -> None:
        try:
            if not self._memory:
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            try:
                sql.create_schema(conn)
            except BaseException:
                conn.close()
                raise
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeError(f"cannot open the history database {self._path}: {exc}") from exc
        # A memory database lives while a connection is open; a file one needs none kept.
        if self._memory:
            self._keepalive = conn
        else:
            conn.close()

    async def close(self) -> None:
        """Commit every queued write, then close. Safe to call twice, or concurrently."""
        if self._closing is None:
            if self._state != "started":
                self._state = "closed"
                return
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        self._state = "closing"
        writer, readers = self._writer, self._readers
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        if readers is not None:
            await asyncio.to_thread(readers.shutdown, True)
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        if self._keepalive is not None:
            self._keepalive.close()
            self._keepalive = None
        self._state = "closed"

    async def __aenter__(self) -> History:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def failed_writes(self) -> int:
        """Writes dropped because the database refused them (each is logged)."""
        return self._writer.failed if self._writer is not None else 0

    # --- writes: validate and serialize here, commit on the writer thread ---------------

    async def record_events(self, events: list[dict[str, Any]]) -> None:
        """Record received events; an id already recorded is ignored.

        Each: ``{"id", "name", "data": dict, "ts", "received_at"}`` (ms); other keys
        (``user``, ``v``) are kept and given back by :meth:`get_event`.
        """
        params = [rows.event_params(ev, now=rows.now_ms()) for ev in events]  # all checked before any is queued
        for p in params:
            await self._put(sql.INSERT_EVENT, p)

    async def record_run(self, run: dict[str, Any]) -> None:
        """Insert a run or update its status, times, output and error.

        A final status (completed, failed, cancelled) is never overwritten, and
        ``queued`` never overwrites a later status, so late writes are harmless. Keys
        beyond the fixed fields (e.g. ``replay_of``, ``parent``) are kept and given back;
        a write with none keeps the ones recorded before.
        """
        await self._put(sql.UPSERT_RUN, rows.run_params(run))

    async def record_step(self, run_id: str, step: dict[str, Any]) -> None:
        """Record one step attempt; the same (run, step_id, attempt) again replaces it.

        ``step``: ``{"step_id", "name", "attempt", "status": "completed"|"failed"|"retrying",
        "output", "error": dict|None, "started_at", "ended_at", "duration_ms",
        "timings": {name: ms}, "logs": str}``.
        """
        await self._put(sql.UPSERT_STEP, rows.step_params(run_id, step))

    async def repair_step(self, run_id: str, step: dict[str, Any]) -> None:
        """Like :meth:`record_step`, but never replaces a row already completed or failed:
        for writing a finished run's steps again from its state, after a crash may have
        lost some of their rows."""
        await self._put(sql.REPAIR_STEP, rows.step_params(run_id, step))

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed (or dropped and logged)."""
        if self._writer is not None:
            await asyncio.wrap_future(self._writer.barrier())

    async def _put(self, statement: str, params: tuple[Any, ...]) -> None:
        if self._state != "started" or self._writer is None:
            raise RuntimeError(f"history is {self._state}, not started: call start() first")
        self._writer.put(statement, params)
        if self._writer.pending > HIGH_WATER:
            await self.flush()

    # --- reads: on the reader threads, each with its own connection ---------------------

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            if self._memory:
                # Shared-cache memory databases lock tables, not files: without this a
                # read during the writer's transaction fails at once with "locked".
                conn.execute("PRAGMA read_uncommitted = 1")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._state != "started" or self._readers is None:
            raise RuntimeError(f"history is {self._state}, not started: call start() first")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._reader_conn()))

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        """The event, with ``"runs"``: the runs it started (oldest first); ``None`` if unknown."""
        def q(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(sql.SELECT_EVENT, (event_id,)).fetchone()
            if row is None:
                return None
            event = rows.event_doc(row)
            event["runs"] = [rows.run_doc(r) for r in conn.execute(sql.SELECT_RUNS_OF_EVENT, (event_id,))]
            return event
        return await self._read(q)

    async def list_events(self, *, name: str | None = None, limit: int = 50,
                          cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Events newest first (by receive time), and a cursor for the next page or ``None``.

        ``ValueError`` for a limit outside 1..1000 or a cursor this store did not give.
        """
        found = await self._page("events", "received_at", {"name": name}, limit, cursor)
        return [rows.event_doc(r) for r in found[:limit]], _next_cursor(found, limit, time_index=4)

    async def list_runs(self, *, function: str | None = None, status: str | None = None, limit: int = 50,
                        cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Runs newest first (by creation time), and a cursor for the next page or ``None``.

        ``ValueError`` for a limit outside 1..1000 or a cursor this store did not give.
        """
        found = await self._page("runs", "created_at", {"function": function, "status": status}, limit, cursor)
        return [rows.run_doc(r) for r in found[:limit]], _next_cursor(found, limit, time_index=5)

    async def _page(self, table: str, time_col: str, equal: dict[str, str | None], limit: int,
                    cursor: str | None) -> list[tuple[Any, ...]]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, not {limit!r}")
        query, params = sql.select_page(table, time_col, equal, cursor)
        # One row more than asked says whether there is a next page.
        return await self._read(lambda c: c.execute(query, (*params, limit + 1)).fetchall())

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run with ``"steps"``: every attempt, ordered by start time then attempt; ``None`` if unknown."""
        def q(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(sql.SELECT_RUN, (run_id,)).fetchone()
            if row is None:
                return None
            run = rows.run_doc(row)
            run["steps"] = [rows.step_doc(r) for r in conn.execute(sql.SELECT_STEPS, (run_id,))]
            return run
        return await self._read(q)


def _next_cursor(found: list[tuple[Any, ...]], limit: int, *, time_index: int) -> str | None:
    if len(found) <= limit:
        return None
    last = found[limit - 1]
    return sql.make_cursor(last[time_index], last[0])
