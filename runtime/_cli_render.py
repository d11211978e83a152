"""How the CLI shows runs to a person."""

from __future__ import annotations

import datetime
import json
from typing import Any

OUTPUT_WIDTH = 100


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _took(start: int | None, end: int | None) -> str:
    if not start or not end:
        return "-"
    ms = end - start
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _short(value: Any, width: int = OUTPUT_WIDTH) -> str:
    text = json.dumps(value, separators=(",", ":"), default=repr)
    return text if len(text) <= width else text[: width - 1] + "…"


def runs_table(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "No runs yet. Send an event: sluice send NAME --data '{...}'"
    rows = [("RUN", "FUNCTION", "STATUS", "STARTED", "TOOK")]
    rows += [(r["id"], r["function"], r["status"], _when(r.get("started_at") or r.get("created_at")),
              _took(r.get("started_at"), r.get("ended_at"))) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def run_detail(run: dict[str, Any]) -> str:
    lines = [
        f"run       {run['id']}",
        f"function  {run['function']}",
        f"status    {run['status']}",
        f"event     {run.get('event_id')}",
        f"started   {_when(run.get('started_at'))}   took {_took(run.get('started_at'), run.get('ended_at'))}",
        "",
        "steps:",
    ]
    steps = run.get("steps") or []
    if not steps:
        lines.append("  (none yet)")
    for s in steps:
        took = f"{s['duration_ms']:.0f} ms" if s.get("duration_ms") is not None else "-"
        lines.append(f"  {s['name']:<24} attempt {s['attempt']}  {s['status']:<9} {took:>8}")
        if s.get("error"):
            lines.append(f"      error: {s['error'].get('name')}: {_short(s['error'].get('message'))}")
        elif s["status"] == "completed":
            lines.append(f"      output: {_short(s.get('output'))}")
    lines.append("")
    if run.get("error"):
        lines.append(f"error: {run['error'].get('name')}: {run['error'].get('message')}")
    if run["status"] == "completed":
        lines.append(f"output: {_short(run.get('output'), 400)}")
    return "\n".join(lines)
