"""The history store's one writer: a thread with its own connection that commits
queued statements in batches, one transaction a batch.

Why a thread and one connection: SQLite allows one writer at a time, and a commit
costs the same for 1 row as for 1,000, so the throughput comes from batching, and the
event loop never waits on disk. Callers enqueue (microseconds) and move on;
:meth:`Writer.barrier` gives a future that resolves once everything enqueued before it
is committed.

A statement that fails (a constraint, a bad value) is logged and dropped: one bad row
never loses the rest of its batch, and the thread never dies on a bad write.
"""

from __future__ import annotations

import itertools
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import structlog

log = structlog.get_logger("sluice.history")

# Rows a transaction: big enough that commits are rare under load, small enough that a
# reader never waits long behind one.
BATCH = 2000

Write = tuple[str, tuple[Any, ...]]
_Item = Write | Future[None] | None  # None: stop


class Writer:
    """Commits ``(statement, params)`` pairs on a background thread.

    ``connect`` opens the writer's connection (called on the thread). Failed writes are
    counted in :attr:`failed` and the last reason kept in :attr:`last_error`.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, batch: int = BATCH) -> None:
        self._connect = connect
        self._batch = batch
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="sluice-history-writer", daemon=True)
        self.failed = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def pending(self) -> int:
        """About how many writes are queued (for back-pressure)."""
        return self._queue.qsize()

    def put(self, statement: str, params: tuple[Any, ...]) -> None:
        self._queue.put((statement, params))

    def barrier(self) -> Future[None]:
        """A future done once every write put before it is committed (or dropped)."""
        done: Future[None] = Future()
        if not self.alive:
            done.set_result(None)
        else:
            self._queue.put(done)
        return done

    def stop(self) -> None:
        """Commit what is queued, then end the thread (blocking; call from a worker thread)."""
        if self.alive:
            self._queue.put(None)
            self._thread.join()

    # --- on the thread ----------------------------------------------------------------

    def _loop(self) -> None:
        conn = self._connect()
        try:
            stop = False
            while not stop:
                batch, waiters, stop = self._take()
                try:
                    if batch:
                        self._commit(conn, batch)
                except Exception as exc:  # never let the writer die: later writes must still land
                    self.failed += len(batch)
                    self.last_error = repr(exc)
                    log.exception("history batch lost", rows=len(batch))
                finally:
                    for waiter in waiters:
                        waiter.set_result(None)
        finally:
            conn.close()

    def _take(self) -> tuple[list[Write], list[Future[None]], bool]:
        """Block for one item, then take whatever else is queued, up to a batch."""
        batch: list[Write] = []
        waiters: list[Future[None]] = []
        item: _Item = self._queue.get()
        while True:
            if item is None:
                return batch, waiters, True
            if isinstance(item, Future):
                waiters.append(item)
            else:
                batch.append(item)
            if len(batch) >= self._batch:
                return batch, waiters, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, waiters, False

    def _commit(self, conn: sqlite3.Connection, batch: list[Write]) -> None:
        try:
            conn.execute("BEGIN")
            # Runs of the same statement go through executemany: one prepared statement.
            for statement, group in itertools.groupby(batch, key=lambda w: w[0]):
                conn.executemany(statement, [params for _, params in group])
            conn.execute("COMMIT")
            return
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        # Something in the batch is bad: write them one by one, in one transaction,
        # dropping only the rows that fail.
        conn.execute("BEGIN")
        for statement, params in batch:
            try:
                conn.execute(statement, params)
            except sqlite3.Error as exc:
                self.failed += 1
                self.last_error = str(exc)
                log.error("history write dropped", error=str(exc), statement=statement.split("(")[0].strip())
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # e.g. disk full: the batch is lost, the writer lives on
            self.failed += len(batch)
            self.last_error = str(exc)
            log.error("history batch lost", error=str(exc), rows=len(batch))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
