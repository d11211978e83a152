"""The history store on real SQLite files: what goes in comes back out."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runtime.history import History, parse_url


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[History]:
    async with History(f"sqlite:///{tmp_path / 'history.db'}") as h:
        yield h


def run_doc(run_id: str = "run-1", **kw: Any) -> dict[str, Any]:
    doc = {"id": run_id, "function": "shop/process-order", "app": "shop", "event_id": "ev-1",
           "status": "queued", "created_at": 1_000, "attempt": 0}
    return {**doc, **kw}


def step_doc(step_id: str, attempt: int, status: str, started_at: int, **kw: Any) -> dict[str, Any]:
    doc = {"step_id": step_id, "name": f"name-{step_id}", "attempt": attempt, "status": status,
           "output": None, "error": None, "started_at": started_at, "ended_at": started_at + 5,
           "duration_ms": 5.0, "timings": {"sandbox_ms": 4.5}, "logs": ""}
    return {**doc, **kw}


async def test_an_event_comes_back_with_its_data_and_extra_fields(history: History) -> None:
    await history.record_events([{"id": "ev-1", "name": "shop/order.created", "data": {"id": 7, "total": 150},
                                  "ts": 100, "received_at": 105, "user": {"tenant": "t1"}, "v": "2"}])
    await history.flush()
    event = await history.get_event("ev-1")
    assert event == {"id": "ev-1", "name": "shop/order.created", "data": {"id": 7, "total": 150}, "ts": 100,
                     "received_at": 105, "user": {"tenant": "t1"}, "v": "2", "runs": []}
    assert await history.get_event("nope") is None


async def test_the_same_event_id_twice_is_recorded_once(history: History) -> None:
    await history.record_events([{"id": "ev-1", "name": "a/first", "data": {}, "ts": 1, "received_at": 1}])
    await history.record_events([{"id": "ev-1", "name": "a/second", "data": {}, "ts": 2, "received_at": 2}])
    await history.flush()
    events, _ = await history.list_events()
    assert [e["name"] for e in events] == ["a/first"]


async def test_a_bad_event_in_a_batch_records_none_of_it(history: History) -> None:
    with pytest.raises(ValueError, match="'name'"):
        await history.record_events([{"id": "ok", "name": "a/b"}, {"id": "bad"}])
    await history.flush()
    assert await history.list_events() == ([], None)


async def test_an_event_shows_the_runs_it_started(history: History) -> None:
    await history.record_events([{"id": "ev-1", "name": "shop/order.created", "data": {}, "ts": 1,
                                  "received_at": 1}])
    await history.record_run(run_doc("run-a", function="shop/a", created_at=10))
    await history.record_run(run_doc("run-b", function="shop/b", created_at=11))
    await history.record_run(run_doc("run-other", event_id="ev-2"))
    await history.flush()
    event = await history.get_event("ev-1")
    assert event is not None
    assert [r["id"] for r in event["runs"]] == ["run-a", "run-b"]
    assert event["runs"][0]["function"] == "shop/a"


async def test_a_run_moves_through_its_statuses_by_upsert(history: History) -> None:
    await history.record_run(run_doc())
    await history.record_run(run_doc(status="running", started_at=1_010, attempt=1))
    await history.flush()
    run = await history.get_run("run-1")
    assert run is not None
    assert (run["status"], run["started_at"], run["attempt"]) == ("running", 1_010, 1)
    await history.record_run(run_doc(status="completed", started_at=1_010, ended_at=1_500,
                                     output={"charged": 150}, attempt=1))
    await history.flush()
    run = await history.get_run("run-1")
    assert run == {**run_doc(), "status": "completed", "started_at": 1_010, "ended_at": 1_500,
                   "output": {"charged": 150}, "error": None, "attempt": 1, "steps": []}


async def test_a_late_write_does_not_undo_a_final_status(history: History) -> None:
    await history.record_run(run_doc(status="running", started_at=5))
    await history.record_run(run_doc(status="failed", ended_at=9, error={"name": "Boom", "message": "no"}))
    await history.record_run(run_doc(status="running"))
    await history.record_run(run_doc(status="queued"))
    await history.flush()
    run = await history.get_run("run-1")
    assert run is not None
    assert (run["status"], run["error"]) == ("failed", {"name": "Boom", "message": "no"})


async def test_queued_written_late_does_not_undo_running(history: History) -> None:
    await history.record_run(run_doc(status="running", started_at=5))
    await history.record_run(run_doc(status="queued"))
    await history.flush()
    run = await history.get_run("run-1")
    assert run is not None and run["status"] == "running"


async def test_step_attempts_come_back_as_a_timeline(history: History) -> None:
    await history.record_run(run_doc(status="running"))
    # Recorded out of order; read back by start time, then attempt.
    await history.record_step("run-1", step_doc("b", 0, "completed", 300, output=[1, 2]))
    await history.record_step("run-1", step_doc("a", 1, "completed", 200, output={"ok": True}))
    await history.record_step("run-1", step_doc("a", 0, "retrying", 100,
                                                error={"name": "Timeout", "message": "slow"}))
    await history.flush()
    run = await history.get_run("run-1")
    assert run is not None
    assert [(s["step_id"], s["attempt"], s["status"]) for s in run["steps"]] == [
        ("a", 0, "retrying"), ("a", 1, "completed"), ("b", 0, "completed")]
    first = run["steps"][0]
    assert first == {"step_id": "a", "name": "name-a", "attempt": 0, "status": "retrying", "output": None,
                     "error": {"name": "Timeout", "message": "slow"}, "started_at": 100, "ended_at": 105,
                     "duration_ms": 5.0, "timings": {"sandbox_ms": 4.5}, "logs": ""}
    assert run["steps"][2]["output"] == [1, 2]


async def test_the_same_step_attempt_twice_is_replaced_not_duplicated(history: History) -> None:
    await history.record_run(run_doc())
    await history.record_step("run-1", step_doc("a", 0, "failed", 100, logs="first"))
    await history.record_step("run-1", step_doc("a", 0, "completed", 100, output="x", logs="second"))
    await history.flush()
    run = await history.get_run("run-1")
    assert run is not None
    assert [(s["status"], s["output"], s["logs"]) for s in run["steps"]] == [("completed", "x", "second")]


async def test_outputs_keep_any_json_and_store_the_rest_as_repr(history: History) -> None:
    outputs: list[Any] = ["text", 42, 1.5, True, [1, "a"], {"nested": {"list": [None]}}]
    for i, out in enumerate(outputs):
        await history.record_step("run-1", step_doc(f"s{i}", 0, "completed", i, output=out))
    await history.record_step("run-1", step_doc("bytes", 0, "completed", 10, output={"raw": b"\x00\xff"}))
    await history.record_step("run-1", step_doc("nan", 0, "completed", 11, output=float("nan")))
    await history.record_run(run_doc())
    await history.flush()
    run = await history.get_run("run-1")
    assert run is not None
    got = {s["step_id"]: s["output"] for s in run["steps"]}
    assert [got[f"s{i}"] for i in range(len(outputs))] == outputs
    assert got["bytes"] == {"raw": "b'\\x00\\xff'"}
    assert got["nan"] == "nan"


async def test_filters_pick_runs_by_function_and_status(history: History) -> None:
    for i, (fn, status) in enumerate([("a/one", "completed"), ("a/one", "failed"), ("a/two", "failed"),
                                      ("a/two", "running")]):
        await history.record_run(run_doc(f"run-{i}", function=fn, status=status, created_at=i))
    await history.flush()

    def ids(rows: list[dict[str, Any]]) -> list[str]:
        return [r["id"] for r in rows]

    assert ids((await history.list_runs(function="a/one"))[0]) == ["run-1", "run-0"]
    assert ids((await history.list_runs(status="failed"))[0]) == ["run-2", "run-1"]
    assert ids((await history.list_runs(function="a/two", status="failed"))[0]) == ["run-2"]
    assert (await history.list_runs(function="a/none"))[0] == []


async def test_events_filter_by_name(history: History) -> None:
    await history.record_events([{"id": f"ev-{i}", "name": "a/x" if i % 2 else "a/y", "data": {"i": i},
                                  "ts": i, "received_at": i} for i in range(6)])
    await history.flush()
    events, cursor = await history.list_events(name="a/x")
    assert [e["id"] for e in events] == ["ev-5", "ev-3", "ev-1"]
    assert cursor is None


async def test_limits_outside_1_to_1000_are_refused(history: History) -> None:
    for bad in (0, 1001, -1):
        with pytest.raises(ValueError, match="limit must be an integer from 1 to 1000"):
            await history.list_runs(limit=bad)
        with pytest.raises(ValueError, match="limit"):
            await history.list_events(limit=bad)


async def test_a_run_without_required_fields_is_refused_by_name(history: History) -> None:
    with pytest.raises(ValueError, match="'status'"):
        await history.record_run({"id": "r", "function": "a/b"})
    with pytest.raises(ValueError, match="run status 'done' is not one of cancelled, completed"):
        await history.record_run(run_doc(status="done"))
    with pytest.raises(ValueError, match="'step_id'"):
        await history.record_step("r", {"status": "completed"})


def test_bad_urls_are_refused_naming_the_url() -> None:
    for url in ("postgresql://user:secret@db/sluice", "sqlite://relative.db", "", "mysql://db"):
        with pytest.raises(ValueError, match="history URL") as err:
            History(url)
        assert "secret" not in str(err.value)
    with pytest.raises(ValueError) as err:
        History("postgresql://user:secret@db/sluice")
    assert "postgresql://user:***@db/sluice" in str(err.value)


def test_sqlite_urls_and_plain_paths_name_the_file() -> None:
    assert parse_url("sqlite:///var/lib/h.db") == "/var/lib/h.db"
    assert parse_url("sqlite:////var/lib/h.db") == "/var/lib/h.db"
    assert parse_url("sqlite://:memory:") == ":memory:"
    assert parse_url("data/h.db") == "data/h.db"


async def test_close_twice_and_concurrently_is_safe(tmp_path: Path) -> None:
    h = History(str(tmp_path / "h.db"))
    await h.close()  # never started
    h = History(str(tmp_path / "h.db"))
    await h.start()
    await h.record_run(run_doc())
    await asyncio.gather(h.close(), h.close())
    await h.close()
    with pytest.raises(RuntimeError, match="closed"):
        await h.record_run(run_doc())
    with pytest.raises(RuntimeError, match="closed"):
        await h.get_run("run-1")
    # close committed the queued write
    async with History(str(tmp_path / "h.db")) as again:
        assert (await again.get_run("run-1") or {}).get("status") == "queued"


async def test_writing_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="call start"):
        await History("sqlite://:memory:").record_run(run_doc())


async def test_a_memory_database_works_like_a_file(tmp_path: Path) -> None:
    async with History("sqlite://:memory:") as h:
        await h.record_run(run_doc())
        await h.flush()
        assert (await h.get_run("run-1") or {}).get("id") == "run-1"


async def test_the_file_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "h.db"
    async with History(f"sqlite:///{path}") as h:
        await h.record_run(run_doc())
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    finally:
        conn.close()


async def test_a_database_from_a_newer_sluice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with History(str(path)):
        pass
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="schema version 99 is newer"):
        await History(str(path)).start()


async def test_an_unopenable_path_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "adir.db").mkdir()
    with pytest.raises(RuntimeError, match=r"adir\.db"):
        await History(str(tmp_path / "adir.db")).start()


async def test_extra_run_fields_are_kept_and_survive_a_write_without_them(history: History) -> None:
    await history.record_run(run_doc(replay_of="run-0", parent={"run": "p", "step": "s"}))
    await history.record_run(run_doc(status="running", started_at=1_001))
    await history.flush()
    run = await history.get_run("run-1")
    assert run is not None
    assert (run["replay_of"], run["parent"], run["status"]) == ("run-0", {"run": "p", "step": "s"}, "running")
    rows, _ = await history.list_runs()
    assert rows[0]["replay_of"] == "run-0"


V1_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE events (id TEXT PRIMARY KEY, name TEXT NOT NULL, data TEXT, ts INTEGER, received_at INTEGER, doc TEXT);
CREATE TABLE runs (id TEXT PRIMARY KEY, function TEXT NOT NULL, app TEXT NOT NULL, event_id TEXT,
    status TEXT NOT NULL, created_at INTEGER, started_at INTEGER, ended_at INTEGER, output TEXT, error TEXT,
    attempt INTEGER);
CREATE TABLE steps (run_id TEXT NOT NULL, step_id TEXT NOT NULL, name TEXT NOT NULL, attempt INTEGER NOT NULL,
    status TEXT NOT NULL, output TEXT, error TEXT, started_at INTEGER, ended_at INTEGER, duration_ms REAL,
    timings TEXT, logs TEXT, PRIMARY KEY (run_id, step_id, attempt));
INSERT INTO runs VALUES ('old', 'a/f', 'a', NULL, 'completed', 5, 6, 7, '{"ok":1}', NULL, 0);
"""


async def test_a_version_1_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.close()
    async with History(str(path)) as history:
        old = await history.get_run("old")
        assert old is not None and (old["status"], old["output"]) == ("completed", {"ok": 1})
        await history.record_run(run_doc(replay_of="old"))
        await history.flush()
        assert (await history.get_run("run-1") or {}).get("replay_of") == "old"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    finally:
        conn.close()
