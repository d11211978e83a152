"""How the CLI shows runs and events to a person.

Everything here renders the API's JSON shapes (docs/api.md). Text that came from a
guest — step names, logs, error messages — is untrusted: control characters are
escaped so a guest cannot drive the reader's terminal. Times are shown in local time.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Sequence
from typing import Any

STEP_OUTPUT_CHARS = 100   # one line per step
FINAL_OUTPUT_LINES = 40   # the run's output, pretty-printed
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """``text`` as a string with control characters (but newline and tab) escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def when(ms: Any) -> str:
    """A ms-since-epoch time as local ``YYYY-MM-DD HH:MM:SS``; ``-`` for none."""
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms <= 0:
        return "-"
    try:
        return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return str(ms)


def duration(ms: Any) -> str:
    """A duration in ms for people: ``850 ms``, ``12.3 s``, ``4m05s``, ``2h03m``; ``-`` for none."""
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms < 0:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 or float(ms).is_integer() else f"{ms:.1f} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def took(start: Any, end: Any) -> str:
    if isinstance(start, int | float) and isinstance(end, int | float) and start and end:
        return duration(end - start)
    return "-"


def one_line(value: Any, width: int = STEP_OUTPUT_CHARS) -> str:
    """``value`` as compact JSON on one line, cut at ``width`` characters with ``…``."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=repr)
    text = clean(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def block(value: Any, max_lines: int = FINAL_OUTPUT_LINES, indent: str = "  ") -> list[str]:
    """``value`` as indented, pretty-printed JSON lines, cut after ``max_lines``."""
    lines = clean(json.dumps(value, indent=2, ensure_ascii=False, default=repr)).splitlines()
    if len(lines) > max_lines:
        cut = len(lines) - max_lines
        lines = [*lines[:max_lines], f"… ({cut} more lines; --json shows everything)"]
    return [indent + line for line in lines]


def error_text(error: Any) -> str:
    """An API error object (``{"name", "message", "stack"}``) as ``Name: message``."""
    if isinstance(error, dict):
        name, message = error.get("name"), error.get("message")
        text = f"{name}: {message}" if name and message else str(message or name or error)
    else:
        text = str(error)
    return clean(text)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart."""
    all_rows = [list(header), *[[clean(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in all_rows)


def runs_table(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "No runs. Send an event: sluice send NAME --data '{...}'"
    return table(("RUN", "FUNCTION", "STATUS", "STARTED", "TOOK"), [
        (str(r.get("id")), str(r.get("function")), str(r.get("status")),
         when(r.get("started_at") or r.get("created_at")), took(r.get("started_at"), r.get("ended_at")))
        for r in runs])


def events_table(events: list[dict[str, Any]]) -> str:
    if not events:
        return "No events. Send one: sluice send NAME --data '{...}'"
    return table(("EVENT", "NAME", "RECEIVED", "DATA"), [
        (str(e.get("id")), str(e.get("name")), when(e.get("received_at")), one_line(e.get("data"), 60))
        for e in events])


def run_detail(run: dict[str, Any], *, logs: bool = False) -> str:
    """The run: what it is, its step timeline (every attempt), and its result."""
    lines = [
        f"run       {clean(run.get('id'))}",
        f"function  {clean(run.get('function'))}",
        f"status    {clean(run.get('status'))}" + (f"   (attempt {run['attempt']})" if run.get("attempt") else ""),
        f"event     {clean(run.get('event_id') or '-')}",
        *([f"replay of {clean(run['replay_of'])}"] if run.get("replay_of") else []),
        *([f"parent    {clean(run['parent'].get('run'))} (step {clean(run['parent'].get('step'))})"]
          if isinstance(run.get("parent"), dict) else []),
        f"created   {when(run.get('created_at'))}",
        f"started   {when(run.get('started_at'))}   took {took(run.get('started_at'), run.get('ended_at'))}",
        "",
    ]
    steps = run.get("steps") or []
    lines.append(f"steps ({len(steps)} attempt{'s' if len(steps) != 1 else ''})" if steps else "steps     none yet")
    width = min(40, max((len(_step_name(s)) for s in steps), default=0))
    for i, step in enumerate(steps, 1):
        lines += _step_lines(i, step, width, logs=logs)
    lines.append("")
    if run.get("error"):
        lines.append(f"error     {error_text(run['error'])}")
        stack = run["error"].get("stack") if isinstance(run["error"], dict) else None
        if logs and stack:
            lines += ["  " + clean(line) for line in str(stack).splitlines()]
    if run.get("status") == "completed" or run.get("output") is not None:
        lines.append("output")
        lines += block(run.get("output"))
    return "\n".join(lines).rstrip()


def _step_name(step: dict[str, Any]) -> str:
    return clean(step.get("name") or step.get("step_id"))


def _step_lines(index: int, step: dict[str, Any], width: int, *, logs: bool) -> list[str]:
    head = (f"  {index:>2}. {_step_name(step).ljust(width)}  attempt {step.get('attempt', 0)}  "
            f"{clean(step.get('status')).ljust(9)}  {duration(step.get('duration_ms')):>8}")
    out = [head.rstrip()]
    if step.get("error"):
        out.append(f"      error: {error_text(step['error'])}")
        stack = step["error"].get("stack") if isinstance(step["error"], dict) else None
        if logs and stack:
            out += ["        " + clean(line) for line in str(stack).splitlines()]
    if step.get("status") == "completed" or step.get("output") is not None:
        out.append(f"      output: {one_line(step.get('output'))}")
    text = step.get("logs") or ""
    if logs and text:
        out.append("      logs:")
        out += ["        " + clean(line) for line in str(text).splitlines()]
    elif text:
        count = len(str(text).splitlines())
        out.append(f"      logs: {count} line{'s' if count != 1 else ''} (--logs shows them)")
    return out


def event_detail(event: dict[str, Any]) -> str:
    """The event, its data, and the runs it started."""
    lines = [
        f"event     {clean(event.get('id'))}",
        f"name      {clean(event.get('name'))}",
        f"sent      {when(event.get('ts'))}",
        f"received  {when(event.get('received_at'))}",
        "data",
        *block(event.get("data")),
        "",
    ]
    runs = event.get("runs") or []
    none = "runs      none (no function wants this event, or none recorded yet)"
    lines.append(f"runs ({len(runs)})" if runs else none)
    if runs:
        lines += ["  " + line for line in runs_table(runs).splitlines()]
    return "\n".join(lines)


def trigger_text(trigger: Any) -> str:
    """A trigger as ``event`` or ``event if EXPR`` (or its JSON, for a kind not known here)."""
    if isinstance(trigger, dict) and trigger.get("event"):
        cond = trigger.get("if")
        return clean(trigger["event"] + (f" if {cond}" if cond else ""))
    return one_line(trigger, 80)


def functions_table(functions: list[dict[str, Any]]) -> str:
    if not functions:
        return "No functions. Is an app loaded? (sluice dev APP)"
    return table(("FUNCTION", "TRIGGERS", "SANDBOX"), [
        (str(f.get("id")), ", ".join(trigger_text(t) for t in f.get("triggers") or []), sandbox_text(f))
        for f in functions])


def sandbox_text(function: dict[str, Any]) -> str:
    """``wasm``, or ``wasm (reused guests)`` for an app that opted in to reuse."""
    reuse = isinstance(function.get("target"), dict) and function["target"].get("reuse")
    return str(function.get("sandbox")) + (" (reused guests)" if reuse else "")
