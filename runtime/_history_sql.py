"""The history store's SQL, all of it, in one place.

The statements are kept to what SQLite (>= 3.24) and PostgreSQL both accept: ``?``
placeholders aside (a PostgreSQL driver swaps them for ``%s``), upserts are
``INSERT ... ON CONFLICT (...) DO UPDATE/NOTHING``, times are ``BIGINT`` ms since the
epoch, JSON is ``TEXT``. The SQLite-only parts are marked ``SQLite:`` — the pragmas, and
``rowid`` as the last tie-break of a step timeline (a PostgreSQL schema would give
``steps`` a serial column for it).

Schema versions: ``schema_version`` holds one row. :func:`create_schema` creates the
version-1 tables, then applies each later migration in :data:`MIGRATIONS` in order, in
one transaction with the version bump; it refuses a database newer than it knows.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, data TEXT, ts BIGINT, received_at BIGINT, doc TEXT
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_by_name ON events (name, received_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, function TEXT NOT NULL, app TEXT NOT NULL, event_id TEXT, status TEXT NOT NULL,
    created_at BIGINT, started_at BIGINT, ended_at BIGINT, output TEXT, error TEXT, attempt INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS runs_by_function ON runs (function, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS runs_by_event ON runs (event_id);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step_id TEXT NOT NULL, name TEXT NOT NULL, attempt INTEGER NOT NULL,
    status TEXT NOT NULL, output TEXT, error TEXT, started_at BIGINT, ended_at BIGINT,
    duration_ms DOUBLE PRECISION, timings TEXT, logs TEXT,
    PRIMARY KEY (run_id, step_id, attempt)
);
"""

# SQLite: WAL lets the reader connections read while the writer commits; NORMAL
# syncs at checkpoints only (a power cut may lose the last commits, never corrupt —
# the run *state* is in JetStream, this is its record).
PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL")


# Version -> the statements that bring the previous version to it. Append only.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # Run fields beyond the fixed columns (e.g. replay_of, parent), as a JSON object.
    2: ("ALTER TABLE runs ADD COLUMN extra TEXT",),
}


def create_schema(conn: sqlite3.Connection) -> None:
    """Create or migrate the tables; ``RuntimeError`` for a database from a newer Sluice.

    ``conn`` is in autocommit mode (``isolation_level=None``).
    """
    for pragma in PRAGMAS:
        conn.execute(pragma)
    conn.execute("BEGIN IMMEDIATE")  # SQLite: take the write lock now; two nodes starting wait in turn
    try:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (1,))
            version = 1
        else:
            version = row[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"history schema version {version} is newer than this Sluice knows "
                               f"({SCHEMA_VERSION}): upgrade Sluice")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (target,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


INSERT_EVENT = """
INSERT INTO events (id, name, data, ts, received_at, doc) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING
"""

# A write that arrives late (a redelivered job's, or a slow node's) must not undo a
# final status, and "queued" must not undo one that moved on.
UPSERT_RUN = """
INSERT INTO runs (id, function, app, event_id, status, created_at, started_at, ended_at, output, error, attempt,
                  extra)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status, started_at = COALESCE(runs.started_at, excluded.started_at),
    ended_at = excluded.ended_at, output = excluded.output, error = excluded.error, attempt = excluded.attempt,
    extra = COALESCE(excluded.extra, runs.extra)
WHERE runs.status NOT IN ('completed', 'failed', 'cancelled')
  AND NOT (excluded.status = 'queued' AND runs.status <> 'queued')
"""

UPSERT_STEP = """
INSERT INTO steps (run_id, step_id, name, attempt, status, output, error, started_at, ended_at, duration_ms,
                   timings, logs)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, step_id, attempt) DO UPDATE SET
    name = excluded.name, status = excluded.status, output = excluded.output, error = excluded.error,
    started_at = excluded.started_at, ended_at = excluded.ended_at, duration_ms = excluded.duration_ms,
    timings = excluded.timings, logs = excluded.logs
"""

# Fills in a step whose row a crash lost, or whose row still shows it pending; a row that
# already says completed or failed (with its logs) is left as it is.
REPAIR_STEP = UPSERT_STEP.rstrip() + "\nWHERE steps.status NOT IN ('completed', 'failed')\n"

EVENT_COLS = "id, name, data, ts, received_at, doc"
RUN_COLS = "id, function, app, event_id, status, created_at, started_at, ended_at, output, error, attempt, extra"
STEP_COLS = "step_id, name, attempt, status, output, error, started_at, ended_at, duration_ms, timings, logs"

SELECT_EVENT = f"SELECT {EVENT_COLS} FROM events WHERE id = ?"
SELECT_RUN = f"SELECT {RUN_COLS} FROM runs WHERE id = ?"
SELECT_RUNS_OF_EVENT = f"SELECT {RUN_COLS} FROM runs WHERE event_id = ? ORDER BY created_at, id LIMIT 1000"
# SQLite: rowid (insertion order) breaks ties between attempts that started in the same ms.
SELECT_STEPS = f"SELECT {STEP_COLS} FROM steps WHERE run_id = ? ORDER BY started_at, attempt, ended_at, rowid"


def select_page(table: str, time_col: str, equal: dict[str, str | None],
                cursor: str | None) -> tuple[str, list[Any]]:
    """A newest-first page query of ``table`` with column equality filters and a keyset
    ``cursor``; its last parameter (the row limit) is for the caller to append.

    ``ValueError`` for a cursor this module did not make.
    """
    cols = {"events": EVENT_COLS, "runs": RUN_COLS}[table]
    clauses: list[str] = []
    params: list[Any] = []
    for col, value in equal.items():
        if value is not None:
            clauses.append(f"{col} = ?")
            params.append(value)
    if cursor:
        after_time, after_id = read_cursor(cursor)
        clauses.append(f"({time_col} < ? OR ({time_col} = ? AND id < ?))")
        params += [after_time, after_time, after_id]
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return f"SELECT {cols} FROM {table} {where} ORDER BY {time_col} DESC, id DESC LIMIT ?", params


def make_cursor(time_ms: int, row_id: str) -> str:
    """An opaque cursor that continues after the row with this time and id."""
    raw = json.dumps([time_ms, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str) -> tuple[int, str]:
    """The (time, id) in a cursor from :func:`make_cursor`; ``ValueError`` otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError):
        value = None
    if (not isinstance(value, list) or len(value) != 2 or type(value[0]) is not int
            or not isinstance(value[1], str)):
        raise ValueError(f"cursor {cursor[:80]!r} is not one this API gave out")
    return value[0], value[1]
