"""``python -m bench.peers``: the same workload on Sluice and the engines users would pick instead.

    python -m bench.peers [--quick] [--only ENGINE[,ENGINE]] [--json PATH] [--update-docs]

Engines, one after another (never two at once on the two cores): ``celery``,
``restate``, ``temporal`` (each in the peers' venv that ``bench/peers/install.sh``
makes), then ``sluice-wasm`` and ``sluice-docker``. Prints Markdown tables on stdout
and writes the JSON to ``bench/out/peers-<UTC timestamp>.json`` (or PATH). With
``--update-docs`` the tables replace the latest ones in docs/benchmarks-peers.md.

Exit status 0 when every selected engine was measured or is ``n/a`` (cannot run here:
the reason is in the report), 1 when one failed (``error``), 2 for bad arguments.
Missed targets are reported, not an exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.peers import report
from bench.peers.common import ROOT, Settings
from bench.peers.runner import ENGINES, PEERS, run_peer, run_sluice, settle

SCHEMA = 1
OUT_DIR = ROOT / "bench" / "out"
DOCS = ROOT / "docs" / "benchmarks-peers.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few runs per phase (smoke tests)")
    parser.add_argument("--only", metavar="ENGINE[,ENGINE]", help=f"run only these: {', '.join(ENGINES)}")
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the JSON here instead of bench/out/")
    parser.add_argument("--update-docs", action="store_true", help="put the tables into docs/benchmarks-peers.md")
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in ENGINES]
        if unknown or not names:
            parser.error(f"unknown engine {', '.join(unknown) or '(none)'}: choose from {', '.join(ENGINES)}")
        args.only = names
    return args


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10, check=False).stdout.strip() or None
    except OSError:
        commit = None
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return {"cores": os.cpu_count(), "memory_mb": mem_kb // 1024, "python": platform.python_version(),
            "kernel": platform.release(), "commit": commit, "load_before": list(os.getloadavg())}


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC)
    clock = time.monotonic()
    info = machine()
    reports: list[dict[str, Any]] = []
    first_sluice = True
    for name in ENGINES:
        if args.only and name not in args.only:
            continue
        print(f"bench-peers: {name} ...", file=sys.stderr, flush=True)
        turn = time.monotonic()
        if name in PEERS:
            result = run_peer(name, args.quick)
        else:  # ingest once, with the first Sluice run: the front door does not depend on the sandbox
            result = run_sluice(name, args.quick, ingest_too=first_sluice)
            first_sluice = False
        result["turn_s"] = round(time.monotonic() - turn, 1)
        reports.append(result)
        print(f"bench-peers: {name}: {result['status']} in {result['turn_s']} s"
              + (f" ({result['reason']})" if result["reason"] else ""), file=sys.stderr, flush=True)
        settle()
    info["load_after"] = list(os.getloadavg())
    return {"schema": SCHEMA, "started": started.isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - clock, 1), "quick": args.quick, "only": args.only,
            "settings": Settings.make(args.quick).__dict__, "machine": info, "engines": reports}


def footer(doc: dict[str, Any]) -> str:
    m = doc["machine"]

    def load(xs: list[float]) -> str:
        return "/".join(f"{x:.1f}" for x in xs)

    return (f"{doc['started']}, commit {m['commit']}, {m['cores']} cores, {m['memory_mb']:,} MiB, load average "
            f"{load(m['load_before'])} before and {load(m['load_after'])} after; the whole run took "
            f"{doc['duration_s']} s{' (quick mode)' if doc['quick'] else ''}.")


def update_docs(text: str) -> None:
    doc = DOCS.read_text()
    head, sep, rest = doc.partition(report.DOCS_START)
    _, sep2, tail = rest.partition(report.DOCS_END)
    if not sep or not sep2:
        raise SystemExit(f"{DOCS} has no {report.DOCS_START} ... {report.DOCS_END} block to replace")
    DOCS.write_text(f"{head}{report.DOCS_START}\n{text}\n{report.DOCS_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    doc = run(args)
    text = report.full(doc["engines"], footer(doc))
    print(text)
    stamp = doc["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = args.json or OUT_DIR / f"peers-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {path}")
    if args.update_docs:
        update_docs(text)
        print(f"updated {DOCS}")
    return 1 if any(r["status"] == "error" for r in doc["engines"]) else 0


if __name__ == "__main__":
    sys.exit(main())
