"""Benchmark rows, the table printed on stdout, and the JSON written to ``bench/out/``.

A :class:`Row` is one measured thing (e.g. ``docker.cold``). Its ``peer`` names another
row of the same run that it is compared with; ``ratio`` is this row's p50 over the
peer's p50. Its ``goal`` is the target from issue 3 (a p50 ceiling, a ratio ceiling
or a peak-memory ceiling); ``met`` says whether this run reached it.

Row status: ``ok`` (measured), ``n/a`` (the feature is not built yet, or the machine
lacks it, e.g. no gVisor; ``note`` says which), ``error`` (it should have worked and
did not; ``note`` has the reason), ``skipped`` (not selected).

JSON shape (``SCHEMA`` = 1)::

    {"schema": 1, "started": ISO-8601 UTC, "duration_s": float, "quick": bool,
     "only": [family, ...] | null, "machine": {...see bench.machine...},
     "rows": [{"name", "family", "measures", "status", "note", "n", "p50_ms", "p95_ms",
               "p99_ms", "mean_ms", "min_ms", "max_ms", "peer", "peer_p50_ms", "ratio",
               "goal": {"metric", "limit", "text"} | null, "met": bool | null,
               "extra": {...}}, ...]}

Numbers a row lacks (not measured) are ``null``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.measure import summarize

SCHEMA = 1
Status = Literal["ok", "n/a", "error", "skipped"]
STAT_KEYS = ("n", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "min_ms", "max_ms")


@dataclass(frozen=True)
class Goal:
    """A target: ``metric`` (``p50_ms``, ``ratio`` or ``peak_rss_mb``) must stay at or
    under ``limit`` (for ``peak_rss_mb``: strictly under)."""

    metric: Literal["p50_ms", "ratio", "peak_rss_mb"]
    limit: float
    text: str


@dataclass
class Row:
    """One benchmark row; see the module docstring."""

    name: str
    family: str
    measures: str
    peer: str | None = None
    goal: Goal | None = None
    samples_ns: list[int] = field(default_factory=list)
    status: Status = "ok"
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def mark(self, status: Status, note: str) -> Row:
        self.status = status
        self.note = note
        self.samples_ns = [] if status != "ok" else self.samples_ns
        return self


def to_json(rows: list[Row]) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts, with peers' p50, ratios and goals resolved."""
    stats: dict[str, dict[str, Any]] = {}
    for row in rows:
        ok = row.status == "ok" and row.samples_ns
        stats[row.name] = summarize(row.samples_ns) if ok else dict.fromkeys(STAT_KEYS)
    out = []
    for row in rows:
        own = stats[row.name]
        peer_p50 = stats[row.peer]["p50_ms"] if row.peer in stats else None
        ratio = None
        if own["p50_ms"] is not None and peer_p50:
            ratio = round(own["p50_ms"] / peer_p50, 3)
        out.append({
            "name": row.name, "family": row.family, "measures": row.measures,
            "status": row.status, "note": row.note, **own,
            "peer": row.peer, "peer_p50_ms": peer_p50, "ratio": ratio,
            "goal": None if row.goal is None else {
                "metric": row.goal.metric, "limit": row.goal.limit, "text": row.goal.text},
            "met": _met(row, own, ratio), "extra": row.extra,
        })
    return out


def _met(row: Row, own: dict[str, Any], ratio: float | None) -> bool | None:
    goal = row.goal
    if goal is None or row.status != "ok":
        return None
    if goal.metric == "p50_ms":
        return None if own["p50_ms"] is None else bool(own["p50_ms"] <= goal.limit)
    if goal.metric == "ratio":
        return None if ratio is None else ratio <= goal.limit
    peak = row.extra.get("peak_rss_mb")
    return None if peak is None else bool(peak < goal.limit)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a fixed-width text table, then one note line per row that has one."""
    head = ("name", "n", "p50 ms", "p95 ms", "p99 ms", "peer", "peer p50", "ratio", "goal", "met")
    lines = [head]
    for r in rows:
        if r["status"] != "ok":
            lines.append((r["name"], "-", r["status"], "", "", r["peer"] or "", _ms(r["peer_p50_ms"]),
                          "-", r["goal"]["text"] if r["goal"] else "", "-"))
            continue
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        lines.append((
            r["name"], str(r["n"]), _ms(r["p50_ms"]), _ms(r["p95_ms"]), _ms(r["p99_ms"]),
            r["peer"] or "", _ms(r["peer_p50_ms"]),
            "-" if r["ratio"] is None else f"{r['ratio']:.3g}x",
            r["goal"]["text"] if r["goal"] else "", met,
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    right = {1, 2, 3, 4, 6, 7}
    text = []
    for i, line in enumerate(lines):
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(line, widths, strict=True))]
        text.append("  ".join(cells).rstrip())
        if i == 0:
            text.append("  ".join("-" * w for w in widths))
    notes = [f"  {r['name']}: {r['note']}" for r in rows if r["note"]]
    if notes:
        text += ["", "notes:", *notes]
    return "\n".join(text)


def write_json(doc: dict[str, Any], path: Path) -> None:
    """Write ``doc`` to ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
