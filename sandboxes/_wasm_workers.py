"""Dedicated worker threads for the WASM sandbox: a lighter hop than an executor.

A guest runs on a thread of its own so the event loop never waits on it (wasmtime
releases the GIL while wasm runs). ``loop.run_in_executor`` costs about 0.1 ms per call
on the build machine, mostly ``concurrent.futures`` bookkeeping and the chained future;
here a job is one ``SimpleQueue.put`` and the answer one ``call_soon_threadsafe``
(about 0.07 ms), which matters when the guest itself takes 0.1 ms.

Failure modes: a job's exception is set on its future; a job whose future was
cancelled before a worker picked it up is skipped; if the loop closed meanwhile the
answer is dropped.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Workers:
    """``count`` daemon threads running blocking jobs for asyncio callers. Not reusable after ``shutdown``."""

    def __init__(self, count: int, name: str) -> None:
        if count < 1:
            raise ValueError(f"need at least one worker, got {count}")
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(*args)`` on a worker; the returned future (of the running loop) gets its result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, fut, fn, args))
        return fut

    def shutdown(self) -> None:
        """Let queued jobs finish, then stop every thread (blocking; at most one job's length)."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, fut, fn, args = job
            if fut.cancelled():  # the caller gave up before the job started: nothing to do
                continue
            try:
                answer: tuple[bool, Any] = (True, fn(*args))
            except BaseException as exc:  # handed to the caller, who re-raises it
                answer = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, fut, answer)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass
            del job, fut, answer  # drop references before blocking on the next job


def _settle(fut: asyncio.Future[Any], answer: tuple[bool, Any]) -> None:
    if fut.done():
        return
    ok, value = answer
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
