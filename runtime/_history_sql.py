"""The history store's SQL, in one place (kept portable for a PostgreSQL driver later)."""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, data TEXT, ts INTEGER, received_at INTEGER, doc TEXT
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, function TEXT NOT NULL, app TEXT NOT NULL, event_id TEXT, status TEXT NOT NULL,
    created_at INTEGER, started_at INTEGER, ended_at INTEGER, output TEXT, error TEXT, attempt INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS runs_by_event ON runs (event_id);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step_id TEXT NOT NULL, name TEXT NOT NULL, attempt INTEGER NOT NULL,
    status TEXT NOT NULL, output TEXT, error TEXT, started_at INTEGER, ended_at INTEGER,
    duration_ms REAL, timings TEXT, logs TEXT,
    PRIMARY KEY (run_id, step_id, attempt)
);
"""


def create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(SCHEMA)
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    elif row[0] > SCHEMA_VERSION:
        raise RuntimeError(f"history schema version {row[0]} is newer than this Sluice ({SCHEMA_VERSION})")


INSERT_EVENT = "INSERT OR IGNORE INTO events (id, name, data, ts, received_at, doc) VALUES (?, ?, ?, ?, ?, ?)"

# A status written late (a redelivered job's history write) must not undo a final one.
UPSERT_RUN = """
INSERT INTO runs (id, function, app, event_id, status, created_at, started_at, ended_at, output, error, attempt)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status, started_at = COALESCE(runs.started_at, excluded.started_at),
    ended_at = excluded.ended_at, output = excluded.output, error = excluded.error, attempt = excluded.attempt
WHERE runs.status NOT IN ('completed', 'failed', 'cancelled')
  AND NOT (excluded.status = 'queued' AND runs.status != 'queued')
"""

UPSERT_STEP = """
INSERT INTO steps (run_id, step_id, name, attempt, status, output, error, started_at, ended_at, duration_ms,
                   timings, logs)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, step_id, attempt) DO UPDATE SET
    status = excluded.status, output = excluded.output, error = excluded.error, started_at = excluded.started_at,
    ended_at = excluded.ended_at, duration_ms = excluded.duration_ms, timings = excluded.timings,
    logs = excluded.logs
"""

EVENT_COLS = "id, name, data, ts, received_at, doc"
RUN_COLS = "id, function, app, event_id, status, created_at, started_at, ended_at, output, error, attempt"

SELECT_EVENT = f"SELECT {EVENT_COLS} FROM events WHERE id = ?"
SELECT_EVENTS = f"SELECT {EVENT_COLS} FROM events {{where}} ORDER BY received_at DESC, id DESC LIMIT ?"
SELECT_RUN = f"SELECT {RUN_COLS} FROM runs WHERE id = ?"
SELECT_RUNS = f"SELECT {RUN_COLS} FROM runs {{where}} ORDER BY created_at DESC, id DESC LIMIT ?"
SELECT_RUNS_OF_EVENT = f"SELECT {RUN_COLS} FROM runs WHERE event_id = ? ORDER BY function"
SELECT_STEPS = """
SELECT step_id, name, attempt, status, output, error, started_at, ended_at, duration_ms, timings, logs
FROM steps WHERE run_id = ? ORDER BY started_at, attempt, rowid
"""


def make_cursor(row: tuple[Any, ...]) -> str:
    """An opaque cursor after ``row`` (its time column and id)."""
    time_col = row[4] if len(row) == 6 else row[5]
    raw = json.dumps([time_col, row[0]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def filters(equal: dict[str, str | None], cursor: str | None, time_col: str) -> tuple[str, list[Any]]:
    """A WHERE clause for column equality filters and a keyset cursor (newest first)."""
    clauses: list[str] = []
    params: list[Any] = []
    for col, value in equal.items():
        if value is not None:
            clauses.append(f"{col} = ?")
            params.append(value)
    if cursor:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            after_time, after_id = json.loads(base64.urlsafe_b64decode(padded))
        except Exception:
            raise ValueError(f"cursor {cursor!r} is not one this API gave out") from None
        clauses.append(f"({time_col} < ? OR ({time_col} = ? AND id < ?))")
        params += [after_time, after_time, after_id]
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
