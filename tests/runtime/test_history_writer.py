"""The history store's writer under load and under bad input: reads go on while it
commits, and one bad row never loses its neighbours."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runtime.history import History


def step(i: int, **kw: Any) -> dict[str, Any]:
    return {"step_id": f"s{i}", "name": f"step {i}", "attempt": 0, "status": "completed", "output": i,
            "error": None, "started_at": i, "ended_at": i + 1, "duration_ms": 1.0, "timings": {}, "logs": "", **kw}


@pytest.mark.parametrize("where", ["file", "memory"])
async def test_reads_go_on_while_the_writer_commits(tmp_path: Path, where: str) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}" if where == "file" else "sqlite://:memory:"
    async with History(url) as history:
        await history.record_run({"id": "r", "function": "a/f", "app": "a", "status": "running", "created_at": 1})
        await history.record_run({"id": "other", "function": "a/g", "app": "a", "status": "running",
                                  "created_at": 2})
        await history.record_step("other", step(0))
        await history.flush()

        async def write() -> None:
            for batch in range(20):
                for i in range(250):
                    await history.record_step("r", step(batch * 250 + i))
                await asyncio.sleep(0)

        async def read() -> int:
            reads = 0
            for _ in range(50):
                other = await history.get_run("other")
                assert other is not None and len(other["steps"]) == 1
                assert len((await history.list_runs(limit=10))[0]) == 2
                reads += 1
            return reads

        _, *reads = await asyncio.gather(write(), read(), read())
        await history.flush()
        run = await history.get_run("r")
        assert run is not None and len(run["steps"]) == 5000
        assert reads == [50, 50]
        assert history.failed_writes == 0


async def test_a_row_the_database_refuses_is_dropped_alone(tmp_path: Path) -> None:
    async with History(f"sqlite:///{tmp_path / 'h.db'}") as history:
        await history.record_run({"id": "r", "function": "a/f", "app": "a", "status": "running", "created_at": 1})
        await history.record_step("r", step(1))
        # sqlite3 cannot bind a dict: this row fails inside the writer's batch.
        await history.record_step("r", step(2, logs={"not": "text"}))
        await history.record_step("r", step(3))
        await history.flush()
        run = await history.get_run("r")
        assert run is not None
        assert [s["step_id"] for s in run["steps"]] == ["s1", "s3"]
        assert history.failed_writes == 1
        # The writer lives on.
        await history.record_step("r", step(4))
        await history.flush()
        assert len((await history.get_run("r") or {})["steps"]) == 3


async def test_flush_with_nothing_queued_returns_at_once(tmp_path: Path) -> None:
    async with History(f"sqlite:///{tmp_path / 'h.db'}") as history:
        await asyncio.wait_for(history.flush(), 2)
    await asyncio.wait_for(history.flush(), 2)  # after close too
