"""The workload on Celery 5.7 with Redis: the unsandboxed, non-durable floor.

Run by the driver in the peers' venv: ``python -m bench.peers.peer_celery --out FILE``.
Starts ``redis-server`` (Debian's, on 127.0.0.1, no RDB, no AOF) and a Celery worker
with its defaults (prefork pool, one process per core, prefetch 4, tasks acked on
receipt), runs warm-up, burst and unloaded phases, stops both.

Times: *accepted* is when ``apply_async`` of the chain returned (its first message is
in Redis); *first step* is the first task's ``time.time()``; *complete* is the last
task's ``date_done`` in the result backend.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.peers.common import (
    Sample,
    Settings,
    burst_report,
    free_port,
    median_burst,
    peer_main,
    spawn,
    stop,
    unloaded_report,
    wait_port,
)

DURABILITY = ("none: Redis in memory (no RDB snapshots, no AOF); tasks acked when received "
              "(acks_late off): a crash loses queued and running work; no sandbox")
WARMUP_RUNS = 5


def measure(settings: Settings, report: dict[str, Any]) -> None:
    import os

    redis_bin = shutil.which("redis-server")
    report.update(version=f"celery {version('celery')}, redis-server", durability=DURABILITY,
                  durability_short="none (Redis in memory)")
    if redis_bin is None:
        report.update(status="n/a", reason="redis-server is not installed (apt-get install -y redis-server)")
        return
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp, Path(tmp, "servers.log").open("ab") as log:
        port = free_port()
        redis = worker = None
        try:
            redis = spawn([redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                           "--dir", tmp, "--daemonize", "no"], log)
            wait_port(port, timeout_s=20, proc=redis, what="redis-server")
            os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{port}"
            from bench.peers import celery_tasks

            report["version"] = f"celery {version('celery')}, {_redis_version(redis_bin)}"
            worker = spawn([sys.executable, "-m", "celery", "-A", "bench.peers.celery_tasks", "worker",
                            "--loglevel", "warning"], log, env={"BENCH_REDIS_URL": f"redis://127.0.0.1:{port}"})
            _wait_worker(celery_tasks.app, worker)
            _unloaded(celery_tasks, WARMUP_RUNS, settings)
            report["burst"] = median_burst([_burst(celery_tasks, settings) for _ in range(settings.bursts)])
            report["unloaded"] = _unloaded(celery_tasks, settings.unloaded, settings)
            report["notes"].append("worker: prefork pool, concurrency = cores (Celery's defaults)")
        finally:
            stop(worker, grace_s=15)
            stop(redis)


def _redis_version(redis_bin: str) -> str:
    import subprocess

    out = subprocess.run([redis_bin, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    word = next((w for w in out.split() if w.startswith("v=")), "v=?")
    return f"redis-server {word[2:]}"


def _wait_worker(app: Any, worker: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"celery worker exited with {worker.returncode}")
        if app.control.ping(timeout=0.5):
            return
    raise RuntimeError(f"celery worker did not answer a ping in {timeout_s:g} s")


def _start(tasks: Any) -> Any:
    from celery import chain  # type: ignore[import-not-found, unused-ignore]

    return chain(tasks.first.s(), tasks.second.s(), tasks.third.s()).apply_async()


def _fill(sample: Sample, result: Any) -> None:
    if result.successful():
        sample.first_step = float(result.result["t0"])
        done: datetime = result.date_done
        sample.complete = done.timestamp()


def _burst(tasks: Any, settings: Settings) -> dict[str, Any]:
    results, samples = [], []
    started = time.time()
    for _ in range(settings.burst):
        results.append(_start(tasks))
        samples.append(Sample(accepted=time.time()))
    submitted = time.time()
    deadline = time.monotonic() + settings.wait_s
    for result in results:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            result.get(timeout=left, propagate=False)
        except Exception:  # a time-out: the rest are counted as not completed
            break
    for sample, result in zip(samples, results, strict=True):
        _fill(sample, result)
    return burst_report(samples, started, submitted)


def _unloaded(tasks: Any, count: int, settings: Settings) -> dict[str, Any]:
    samples = []
    for _ in range(count):
        result = _start(tasks)
        sample = Sample(accepted=time.time())
        try:
            result.get(timeout=min(30.0, settings.wait_s), propagate=False)
        except Exception:
            pass
        _fill(sample, result)
        samples.append(sample)
    return unloaded_report(samples)


if __name__ == "__main__":
    sys.exit(peer_main(sys.argv[1:], "celery", "Celery + Redis", measure))
