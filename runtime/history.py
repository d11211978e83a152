"""History: events, runs and step attempts, kept for querying (SQLite, one file).

Run *state* lives in JetStream KV; this is the record a user queries: what happened,
when, with what output. Writes are cheap for the caller — they are queued and one
writer thread commits them in batches (one transaction per batch) — so recording
never blocks the executor's hot path. Reads run on their own connection in a thread.
WAL mode lets reads and the writer proceed together.

URLs: ``sqlite:///abs/path.db``, ``sqlite://:memory:`` or a plain file path.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from runtime import _history_sql as sql

_BATCH = 512


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=repr)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def sqlite_path(url: str) -> str:
    """The database path in ``url``; ``ValueError`` naming it if it is not a SQLite URL."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://"):]
        if rest == ":memory:" or rest == "/:memory:":
            return ":memory:"
        if rest.startswith("/") and len(rest) > 1:
            return rest
        raise ValueError(f"history URL {url!r}: use sqlite:///absolute/path.db or sqlite://:memory:")
    if "://" in url or not url:
        raise ValueError(f"history URL {url!r} is not supported: use sqlite:///absolute/path.db")
    return url


class History:
    def __init__(self, url: str) -> None:
        self._path = sqlite_path(url)
        if self._path == ":memory:":
            # One shared in-memory database for the writer and the reader.
            self._path = f"file:sluice-history-{id(self):x}?mode=memory&cache=shared"
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | Future[None] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        self._keepalive: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._started = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, uri=self._path.startswith("file:"), check_same_thread=False,
                               isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    async def start(self) -> None:
        if self._started:
            return
        if not self._path.startswith("file:"):
            await asyncio.to_thread(Path(self._path).parent.mkdir, parents=True, exist_ok=True)
        self._keepalive = await asyncio.to_thread(self._connect)
        await asyncio.to_thread(sql.create_schema, self._keepalive)
        self._reader = await asyncio.to_thread(self._connect)
        self._writer = threading.Thread(target=self._write_loop, name="sluice-history", daemon=True)
        self._writer.start()
        self._started = True

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.flush_queue_only()
        self._queue.put(None)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)
        for conn in (self._reader, self._keepalive):
            if conn is not None:
                conn.close()
        self._reader = self._keepalive = None

    async def __aenter__(self) -> History:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- writes ---------------------------------------------------------------------

    async def record_events(self, events: list[dict[str, Any]]) -> None:
        for ev in events:
            self._put(sql.INSERT_EVENT, (ev["id"], ev["name"], _json(ev.get("data") or {}), ev.get("ts"),
                                         ev.get("received_at"), _json(ev)))

    async def record_run(self, run: dict[str, Any]) -> None:
        self._put(sql.UPSERT_RUN, (
            run["id"], run["function"], run["app"], run.get("event_id"), run["status"], run.get("created_at"),
            run.get("started_at"), run.get("ended_at"), _json(run.get("output")), _json(run.get("error")),
            run.get("attempt", 0),
        ))

    async def record_step(self, run_id: str, step: dict[str, Any]) -> None:
        self._put(sql.UPSERT_STEP, (
            run_id, step["step_id"], step["name"], step.get("attempt", 0), step["status"],
            _json(step.get("output")), _json(step.get("error")), step.get("started_at"), step.get("ended_at"),
            step.get("duration_ms"), _json(step.get("timings") or {}), step.get("logs") or "",
        ))

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed."""
        await self.flush_queue_only()

    async def flush_queue_only(self) -> None:
        if self._writer is None or not self._writer.is_alive():
            return
        done: Future[None] = Future()
        self._queue.put(done)
        await asyncio.wrap_future(done)

    def _put(self, statement: str, params: tuple[Any, ...]) -> None:
        if not self._started:
            raise RuntimeError("history is not started")
        self._queue.put((statement, params))

    def _write_loop(self) -> None:
        conn = self._connect()
        try:
            while True:
                item = self._queue.get()
                batch: list[tuple[str, tuple[Any, ...]]] = []
                waiters: list[Future[None]] = []
                stop = False
                while True:
                    if item is None:
                        stop = True
                    elif isinstance(item, Future):
                        waiters.append(item)
                    else:
                        batch.append(item)
                    if stop or len(batch) >= _BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._commit(conn, batch)
                for w in waiters:
                    w.set_result(None)
                if stop:
                    return
        finally:
            conn.close()

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        conn.execute("BEGIN")
        try:
            for statement, params in batch:
                conn.execute(statement, params)
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            # One bad row must not lose the batch: retry them one by one.
            for statement, params in batch:
                try:
                    conn.execute(statement, params)
                except sqlite3.Error:
                    continue

    # --- reads ----------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        def run() -> Any:
            assert self._reader is not None, "history is not started"
            with self._read_lock:
                return fn(self._reader)
        return await asyncio.to_thread(run)

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        def q(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(sql.SELECT_EVENT, (event_id,)).fetchone()
            if row is None:
                return None
            event = _event_row(row)
            event["runs"] = [_run_row(r) for r in conn.execute(sql.SELECT_RUNS_OF_EVENT, (event_id,))]
            return event
        result: dict[str, Any] | None = await self._read(q)
        return result

    async def list_events(self, *, name: str | None = None, limit: int = 50,
                          cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        _check_limit(limit)
        where, params = sql.filters({"name": name}, cursor, "received_at")
        rows = await self._read(lambda c: c.execute(sql.SELECT_EVENTS.format(where=where), (*params, limit + 1))
                                .fetchall())
        items = [_event_row(r) for r in rows[:limit]]
        return items, (sql.make_cursor(rows[limit - 1]) if len(rows) > limit else None)

    async def list_runs(self, *, function: str | None = None, status: str | None = None, limit: int = 50,
                        cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        _check_limit(limit)
        where, params = sql.filters({"function": function, "status": status}, cursor, "created_at")
        rows = await self._read(lambda c: c.execute(sql.SELECT_RUNS.format(where=where), (*params, limit + 1))
                                .fetchall())
        items = [_run_row(r) for r in rows[:limit]]
        return items, (sql.make_cursor(rows[limit - 1]) if len(rows) > limit else None)

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        def q(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(sql.SELECT_RUN, (run_id,)).fetchone()
            if row is None:
                return None
            run = _run_row(row)
            run["steps"] = [_step_row(r) for r in conn.execute(sql.SELECT_STEPS, (run_id,))]
            return run
        result: dict[str, Any] | None = await self._read(q)
        return result


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise ValueError(f"limit must be from 1 to 1000, not {limit}")


def _event_row(row: tuple[Any, ...]) -> dict[str, Any]:
    doc = _load(row[5]) or {}
    return {**doc, "id": row[0], "name": row[1], "data": _load(row[2]), "ts": row[3], "received_at": row[4]}


def _run_row(row: tuple[Any, ...]) -> dict[str, Any]:
    keys = ("id", "function", "app", "event_id", "status", "created_at", "started_at", "ended_at")
    out = dict(zip(keys, row[:8], strict=True))
    out.update(output=_load(row[8]), error=_load(row[9]), attempt=row[10])
    return out


def _step_row(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "step_id": row[0], "name": row[1], "attempt": row[2], "status": row[3], "output": _load(row[4]),
        "error": _load(row[5]), "started_at": row[6], "ended_at": row[7], "duration_ms": row[8],
        "timings": _load(row[9]), "logs": row[10],
    }
