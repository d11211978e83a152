"""The peer benchmark's harness runs its Sluice part end to end in quick mode (peers are not run here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.peers import report
from bench.peers.common import Sample, burst_report, median_burst, percentile, stats_ms

REPO = Path(__file__).resolve().parents[2]


def test_percentiles_and_the_burst_figures_come_from_recorded_times() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([1.0, 2.0], 95) == 2.0
    assert stats_ms([None]) == {"n": 0, "p50": None, "p95": None, "max": None}
    samples = [Sample(accepted=10.0 + i, first_step=10.002 + i, complete=10.010 + i) for i in range(4)]
    samples.append(Sample(accepted=20.0))  # never finished: counted as not completed
    burst = burst_report(samples, started=10.0, submitted=14.0)
    assert burst["runs"] == 5 and burst["completed"] == 4
    assert burst["duration_s"] == pytest.approx(3.01)
    assert burst["runs_per_s"] == pytest.approx(4 / 3.01, abs=0.05)
    assert burst["first_step_ms"]["p50"] == pytest.approx(2.0, abs=0.01)


def test_repeated_bursts_keep_the_median_one_and_list_every_rate() -> None:
    def burst(rate: float, completed: int = 500) -> dict[str, Any]:
        return {"runs": 500, "completed": completed, "runs_per_s": rate, "first_step_ms": {"p50": rate, "p95": rate}}

    kept = median_burst([burst(300.0), burst(450.0), burst(400.0)])
    assert kept["runs_per_s"] == 400.0 and kept["first_step_ms"]["p50"] == 400.0
    assert kept["runs_per_s_each"] == [300.0, 450.0, 400.0]
    # A burst that left runs unfinished ranks lowest, however fast its finished part was.
    assert median_burst([burst(900.0, completed=10), burst(450.0), burst(400.0)])["runs_per_s"] == 400.0
    assert median_burst([burst(410.0)])["runs_per_s"] == 410.0
    reports = [{"status": "ok", "engine": "restate", "label": "Restate", "burst": kept}]
    assert "| 400 (of 300, 450, 400) |" in report.engines_table(reports)


@pytest.mark.slow
def test_a_quick_sluice_wasm_run_prints_the_tables_and_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    done = subprocess.run([sys.executable, "-m", "bench.peers", "--quick", "--only", "sluice-wasm",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    doc: dict[str, Any] = json.loads(out.read_text())
    assert doc["schema"] == 1 and doc["quick"] is True and doc["only"] == ["sluice-wasm"]
    (engine,) = doc["engines"]
    assert engine["engine"] == "sluice-wasm" and engine["status"] == "ok", engine
    burst, unloaded = engine["burst"], engine["unloaded"]
    assert burst["completed"] == burst["runs"] == doc["settings"]["burst"]
    assert burst["runs_per_s"] > 0 and burst["first_step_ms"]["n"] == burst["runs"]
    assert unloaded["completed"] == unloaded["runs"] == doc["settings"]["unloaded"]
    # *accepted* is when the driver read the 200; the event was stored before the 200 was
    # sent, so an idle executor process may start the first step a moment before that
    # (same clock: the guest's is the host's). Never by much, and never after completion.
    assert -20 < unloaded["first_step_ms"]["p50"] <= unloaded["complete_ms"]["p50"]
    assert engine["memory"]["node_peak_mb"] > 0
    for kind in ("single", "batched", "bus_ceiling"):
        assert engine["ingest"][kind]["events"] > 0 and engine["ingest"][kind]["error"] is None
    assert engine["executors"] == 1 and "--executors 1" in engine["label"]
    fairness = engine["fairness"]
    assert fairness["probe_first_step_ms"]["n"] == fairness["probes"] > 0
    assert engine["durability"].startswith("durable")
    assert "| Sluice" in done.stdout and "events/s" in done.stdout
    assert report.DOCS_START not in done.stdout
