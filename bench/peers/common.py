"""What every engine's benchmark shares: the settings, the samples, the statistics and
the processes. Standard library only: the peers' scripts import it from their own venv.

Times are ``time.time()`` seconds (one host clock for the driver, the engines and their
steps); latencies in the reports are milliseconds.

Each engine reports a dict (the ``engine`` entry of the JSON, see ``docs/benchmarks-peers.md``)::

    {"engine", "label", "version", "durability", "status": "ok"|"n/a"|"error", "reason",
     "burst": {"runs", "completed", "duration_s", "runs_per_s", "steps_per_s",
               "first_step_ms": stats, "complete_ms": stats, "submit_s",
               "runs_per_s_each": [every burst's rate]} | None,
     "unloaded": {"runs", "completed", "first_step_ms": stats, "complete_ms": stats} | None,
     "notes": [str, ...], ...engine-specific extras (Sluice: ingest, memory, fairness)}
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
#: Steps per run of the workload (the first records when it started).
STEPS = 3


@dataclass(frozen=True)
class Settings:
    """How much load each engine gets. ``quick`` shrinks everything for smoke tests.

    ``burst``: runs started back to back; ``unloaded``: runs one at a time;
    ``in_flight``: the most submissions a driver has outstanding at once (HTTP and gRPC
    clients); ``wait_s``: the longest the burst waits for its runs to finish;
    ``phase_s``: the longest the unloaded phase (and Sluice's fairness wait) may take.
    ``bursts``: how many times the burst is run back to back; the report keeps the one
    with the median throughput and lists every rate (this VM's runs vary by ±20%).
    """

    burst: int = 500
    bursts: int = 3
    unloaded: int = 100
    in_flight: int = 32
    wait_s: float = 180.0
    phase_s: float = 120.0

    @classmethod
    def make(cls, quick: bool) -> Settings:
        return cls(burst=20, unloaded=5, in_flight=8, wait_s=60.0, phase_s=30.0, bursts=1) if quick else cls()


@dataclass
class Sample:
    """One run: when the engine accepted it (the submit call returned), when its first
    step started, and when the engine recorded it complete (``None``: not seen)."""

    accepted: float
    first_step: float | None = None
    complete: float | None = None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank; ``values`` must not be empty."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def stats_ms(seconds: Iterable[float | None]) -> dict[str, Any]:
    """``{"n", "p50", "p95", "max"}`` in ms of the given durations in seconds (``None``
    entries are skipped); the numbers are ``None`` when there are none."""
    values = [s * 1000 for s in seconds if s is not None]
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {"n": len(values), "p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2),
            "max": round(max(values), 2)}


def burst_report(samples: list[Sample], started: float, submitted: float) -> dict[str, Any]:
    """The burst figures: throughput over first submit -> last recorded completion."""
    done = [s for s in samples if s.complete is not None]
    end = max((s.complete for s in done if s.complete is not None), default=None)
    duration = (end - started) if end is not None else None
    rate = len(done) / duration if duration else None
    return {
        "runs": len(samples), "completed": len(done),
        "duration_s": round(duration, 3) if duration else None,
        "runs_per_s": round(rate, 1) if rate else None,
        "steps_per_s": round(rate * STEPS, 1) if rate else None,
        "first_step_ms": stats_ms(_lag(s.accepted, s.first_step) for s in samples),
        "complete_ms": stats_ms(_lag(s.accepted, s.complete) for s in samples),
        "submit_s": round(submitted - started, 3),
    }


def median_burst(bursts: list[dict[str, Any]]) -> dict[str, Any]:
    """The burst of median throughput among ``bursts`` (same settings, run back to back),
    with ``runs_per_s_each``: every burst's rate, in the order they ran. A burst that
    left runs unfinished ranks lowest (its rate counts only what completed)."""
    ranked = sorted(bursts, key=lambda b: (b["completed"] == b["runs"], b["runs_per_s"] or 0.0))
    return {**ranked[(len(ranked) - 1) // 2], "runs_per_s_each": [b["runs_per_s"] for b in bursts]}


def unloaded_report(samples: list[Sample]) -> dict[str, Any]:
    return {
        "runs": len(samples), "completed": sum(1 for s in samples if s.complete is not None),
        "first_step_ms": stats_ms(_lag(s.accepted, s.first_step) for s in samples),
        "complete_ms": stats_ms(_lag(s.accepted, s.complete) for s in samples),
    }


def _lag(start: float, end: float | None) -> float | None:
    return None if end is None else end - start


def engine_report(engine: str, label: str, *, version: str, durability: str) -> dict[str, Any]:
    """An empty report for ``engine``; the measuring code fills in the phases."""
    return {"engine": engine, "label": label, "version": version, "durability": durability, "status": "ok",
            "reason": None, "burst": None, "unloaded": None, "notes": []}


# --- processes ----------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, *, timeout_s: float, proc: subprocess.Popen[bytes] | None = None,
              what: str = "server") -> None:
    """Return once 127.0.0.1:``port`` accepts connections. Raises ``RuntimeError`` when
    ``proc`` exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not listening on 127.0.0.1:{port} after {timeout_s:g} s")


def spawn(argv: Sequence[str], log: IO[bytes], *, env: dict[str, str] | None = None, cwd: Path = ROOT,
          new_session: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr into ``log``. ``new_session``: in its own
    process group (so :func:`stop` can kill everything it started)."""
    return subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=new_session)


def stop(proc: subprocess.Popen[bytes] | None, *, grace_s: float = 10.0, group: bool = False) -> None:
    """SIGTERM ``proc`` (its whole group with ``group``), SIGKILL after ``grace_s``."""
    if proc is None:
        return
    sig_target = (lambda sig: os.killpg(proc.pid, sig)) if group else proc.send_signal
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            sig_target(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                sig_target(signal.SIGKILL)
            proc.wait(10)
    if group:  # children that outlived the leader
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (``VmRSS``), ``None`` once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (empty when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def peer_main(argv: Sequence[str], engine: str, label: str, measure: Any) -> int:
    """The command line of a peer's script: ``--out FILE [--quick]``. Calls
    ``measure(settings, report)`` (which fills ``report`` in) and writes the report as
    JSON to FILE, with ``status`` ``error`` and the reason if it raised."""
    import argparse
    import json
    import traceback

    parser = argparse.ArgumentParser(prog=f"bench.peers {engine}")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(list(argv))
    report = engine_report(engine, label, version="?", durability="?")
    try:
        measure(Settings.make(args.quick), report)
    except Exception as exc:  # any failure is the report's reason; the driver goes on
        report["status"] = "error"
        report["reason"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]
        report["notes"].append(traceback.format_exc()[-2000:])
    args.out.write_text(json.dumps(report, indent=1))
    return 0 if report["status"] == "ok" else 1
