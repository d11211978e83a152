"""The workload as Celery tasks (imported by the Celery worker, in the peers' venv).

A run is a chain of three tasks: ``first`` returns when it started, ``second`` passes
it on, ``third`` returns ``{"t0", "t2"}`` like the Sluice function. The broker and the
result backend are the Redis at ``$BENCH_REDIS_URL`` (databases 0 and 1).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery  # type: ignore[import-not-found, unused-ignore]

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
app = Celery("bench", broker=f"{REDIS}/0", backend=f"{REDIS}/1")
app.conf.update(
    task_serializer="json", result_serializer="json", accept_content=["json"],
    worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
)


@app.task(name="bench.first")  # type: ignore[untyped-decorator, unused-ignore]
def first() -> float:
    return time.time()


@app.task(name="bench.second")  # type: ignore[untyped-decorator, unused-ignore]
def second(t0: float) -> float:
    return t0


@app.task(name="bench.third")  # type: ignore[untyped-decorator, unused-ignore]
def third(t0: float) -> dict[str, Any]:
    return {"t0": t0, "t2": time.time()}
