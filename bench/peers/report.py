"""The peer benchmark's tables (Markdown, printed and pasted into the docs) and goals.

Three tables: every engine's figures; Sluice's ratio to each peer, written so that a
number above 1 means Sluice did better (throughput: Sluice / peer; latency: peer /
Sluice); Sluice's own extras (ingest, memory, fairness). Then the targets of issue 5,
each marked met or missed for this run.
"""

from __future__ import annotations

from typing import Any

from bench.peers.runner import PEERS, SLUICE

DOCS_START = "<!-- peers-table:start -->"
DOCS_END = "<!-- peers-table:end -->"


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _pair(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("p50") is None:
        return "-"
    return f"{_num(stats['p50'])} / {_num(stats['p95'])}"


def _get(report: dict[str, Any], *path: str) -> Any:
    node: Any = report
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def engines_table(reports: list[dict[str, Any]]) -> str:
    lines = ["| engine | durability | burst runs/s | burst steps/s | burst accepted→1st step p50 / p95 ms "
             "| unloaded accepted→1st step p50 / p95 ms | unloaded accepted→complete p50 / p95 ms |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in reports:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | {r.get('durability_short', '-')} | {r['status']}: {r['reason']} "
                         "| | | | |")
            continue
        burst = r.get("burst") or {}
        done = "" if burst.get("completed") == burst.get("runs") else \
            f" ({burst.get('completed')}/{burst.get('runs')} done)"
        each = [rate for rate in burst.get("runs_per_s_each") or [] if rate]
        if len(each) > 1:
            done += f" (of {', '.join(_num(rate) for rate in each)})"
        lines.append(
            f"| {r['label']} | {r.get('durability_short', '-')} | {_num(burst.get('runs_per_s'))}{done} "
            f"| {_num(burst.get('steps_per_s'))} | {_pair(burst.get('first_step_ms'))} "
            f"| {_pair(_get(r, 'unloaded', 'first_step_ms'))} | {_pair(_get(r, 'unloaded', 'complete_ms'))} |")
    return "\n".join(lines)


def _ratio(ours: Any, theirs: Any, *, higher_is_better: bool) -> str:
    if not ours or not theirs:
        return "-"
    value = ours / theirs if higher_is_better else theirs / ours
    return f"{value:.2f}x"


def ratios_table(reports: list[dict[str, Any]]) -> str:
    peers = [r for r in reports if r["engine"] in PEERS and r["status"] == "ok"]
    ours = [r for r in reports if r["engine"] in SLUICE and r["status"] == "ok"]
    if not peers or not ours:
        return "(no ratios: a peer and a Sluice run must both have been measured)"
    lines = ["| Sluice vs peer | burst runs/s | unloaded 1st step p50 | unloaded complete p50 |",
             "|---|---:|---:|---:|"]
    for s in ours:
        for p in peers:
            lines.append(
                f"| {s['label']} vs {p['label']} "
                f"| {_ratio(_get(s, 'burst', 'runs_per_s'), _get(p, 'burst', 'runs_per_s'), higher_is_better=True)} "
                f"| {_ratio(_get(s, 'unloaded', 'first_step_ms', 'p50'), _get(p, 'unloaded', 'first_step_ms', 'p50'), higher_is_better=False)} "  # noqa: E501
                f"| {_ratio(_get(s, 'unloaded', 'complete_ms', 'p50'), _get(p, 'unloaded', 'complete_ms', 'p50'), higher_is_better=False)} |")  # noqa: E501
    return "\n".join(lines)


def extras_table(reports: list[dict[str, Any]]) -> str:
    lines = ["| Sluice | figure |", "|---|---|"]
    for r in reports:
        if r["engine"] not in SLUICE or r["status"] != "ok":
            continue
        name = r["sandbox"]
        mem = r.get("memory") or {}
        lines.append(f"| {name}: resident memory during the burst | node {_num(mem.get('node_peak_mb'))} MiB, "
                     f"its nats-server {_num(mem.get('nats_peak_mb'))} MiB (peaks) |")
        timings = _get(r, "unloaded", "step_timings_ms")
        if timings and timings.get("step_attempts"):
            parts = ", ".join(f"{k.removesuffix('_ms_p50').removesuffix('_p50')} {_num(v)}"
                              for k, v in timings.items() if k.endswith("_p50"))
            lines.append(f"| {name}: where an unloaded step's time goes (node's own timings, median ms over "
                         f"{timings['step_attempts']} steps) | {parts} |")
        fair = r.get("fairness")
        if fair:
            probes = fair["probe_first_step_ms"]
            started = "" if probes["n"] == fair["probes"] else \
                f"; only {probes['n']} of {fair['probes']} started within {fair['waited_s']:g} s"
            lines.append(
                f"| {name}: fairness — `bench/other` accepted→1st step while `bench/three-steps` bursts "
                f"{fair['burst_runs']:,} runs ({fair['burst_completed']:,} done, "
                f"{_num(fair['burst_runs_per_s'])} runs/s) "
                f"| p50 / p95 {_pair(probes)} ms over {fair['probes']} runs{started} "
                f"(unloaded: {_num(_get(r, 'unloaded', 'first_step_ms', 'p50'))} ms); the burst's own runs "
                f"{_pair(fair['burst_first_step_ms'])} ms; node peak "
                f"{_num(_get(fair, 'memory', 'node_peak_mb'))} MiB |")
        ingest = r.get("ingest")
        if ingest:
            for kind in ("single", "batched"):
                ph = ingest[kind]
                per = "one event per POST" if kind == "single" else f"{ph['per_request']:,} events per POST"
                err = f", stopped: {ph['error']}" if ph.get("error") else ""
                lines.append(f"| event ingest, {per}, {ph['connections']} keep-alive connections "
                             f"| {_num(ph.get('events_per_s'))} events/s "
                             f"({ph['events']:,} acked in {ph['seconds']} s, "
                             f"driver CPU {ph.get('client_cpu_s')} s{err}) |")
            bus = ingest.get("bus_ceiling")
            if bus:
                err = f", stopped: {bus['error']}" if bus.get("error") else ""
                lines.append(f"| bus ceiling: a fresh nats-server storing the same event messages from the bus "
                             f"driver alone (atomic batches of 1,000, {bus['connections']} at once; no HTTP, "
                             f"parsing or scheduler) | {_num(bus.get('events_per_s'))} events/s "
                             f"({bus['events']:,} acked in {bus['seconds']} s{err}) |")
        if r.get("partial"):
            lines.append(f"| {name}: phases not measured | {r['partial']} |")
    return "\n".join(lines)


def notes(reports: list[dict[str, Any]]) -> str:
    """The engines' short notes (long ones, such as logs, stay in the JSON)."""
    return "\n".join(f"- {r['label']}: {n}" for r in reports for n in r.get("notes", []) if len(n) < 300)


def goals(reports: list[dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """Issue 5's targets: (target, met or ``None`` when not measured, the measured figure)."""
    by = {r["engine"]: r for r in reports if r["status"] == "ok"}
    wasm, docker = by.get("sluice-wasm"), by.get("sluice-docker")

    def rate(name: str) -> Any:
        return _get(by.get(name) or {}, "burst", "runs_per_s")

    out: list[tuple[str, bool | None, str]] = []

    def check(text: str, value: Any, ok: Any, shown: str) -> None:
        out.append((text, None if value is None else bool(ok(value)), shown if value is not None else "not measured"))

    w = rate("sluice-wasm")
    for peer, factor in (("restate", 3.0), ("temporal", 10.0), ("celery", 1.0)):
        p = rate(peer)
        value = w / p if w and p else None
        check(f"WASM burst ≥ {factor:g}x {PEERS[peer][0]}'s" if factor > 1 else "WASM burst above Celery's", value,
              lambda v, f=factor: v > f if f == 1.0 else v >= f, f"{value:.2f}x" if value else "")
    first = _get(wasm or {}, "unloaded", "first_step_ms", "p50")
    check("WASM unloaded accepted→1st step p50 ≤ 5 ms", first, lambda v: v <= 5, f"{_num(first)} ms")
    done = _get(wasm or {}, "unloaded", "complete_ms", "p50")
    check("WASM unloaded accepted→complete p50 ≤ 15 ms", done, lambda v: v <= 15, f"{_num(done)} ms")
    d, r = rate("sluice-docker"), rate("restate")
    value = d / r if d and r else None
    check("Docker (warm) burst ≥ Restate's", value, lambda v: v >= 1, f"{value:.2f}x" if value else "")
    single = _get(wasm or {}, "ingest", "single", "events_per_s")
    check("ingest ≥ 10,000 events/s, single POSTs", single, lambda v: v >= 10_000, f"{_num(single)} events/s")
    batched = _get(wasm or {}, "ingest", "batched", "events_per_s")
    ceiling = _get(wasm or {}, "ingest", "bus_ceiling", "events_per_s")
    check("ingest ≥ 100,000 events/s, batched", batched, lambda v: v >= 100_000,
          f"{_num(batched)} events/s" + (f" (bus ceiling here: {_num(ceiling)})" if ceiling else ""))
    for r2 in (wasm, docker):
        mem = _get(r2 or {}, "memory", "node_peak_mb")
        if r2 is not None:
            check(f"{r2['label']}: node resident memory < 300 MB during the burst", mem,
                  lambda v: v * 1.048576 < 300, f"{_num(mem)} MiB")
    return out


def goals_table(reports: list[dict[str, Any]]) -> str:
    lines = ["| target (issue 5) | this run | met |", "|---|---:|:---:|"]
    for text, met, shown in goals(reports):
        lines.append(f"| {text} | {shown} | {'-' if met is None else ('yes' if met else 'no')} |")
    return "\n".join(lines)


def durability_notes(reports: list[dict[str, Any]]) -> str:
    return "\n".join(f"- **{r['label']}** ({r.get('version', '?')}): {r.get('durability', '?')}" for r in reports)


def full(reports: list[dict[str, Any]], footer: str) -> str:
    return "\n\n".join([engines_table(reports), ratios_table(reports), extras_table(reports), goals_table(reports),
                        "Durability of each engine as run:\n\n" + durability_notes(reports),
                        "Notes:\n\n" + (notes(reports) or "- none"), footer])
