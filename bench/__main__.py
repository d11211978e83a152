"""``python -m bench``: run the benchmarks, print the table, write the JSON.

    python -m bench [--quick] [--only FAMILY[,FAMILY]] [--json PATH]

Families, in the order they run: ``wasm``, ``wasm-python``, ``docker``, ``gvisor``,
``memory``, ``durable`` (see docs/benchmarks.md for what each row measures). Without ``--json``
the report goes to ``bench/out/<UTC timestamp>.json`` and ``bench/out/latest.json``;
with it, to PATH only.

Exit status: 0 when every selected row was measured or is ``n/a`` (not built yet, or
not on this machine); 1 when a row failed (``error``); 2 for bad arguments. A missed
goal is reported, not an exit status: numbers on a shared machine wobble.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import docker_steps, durable_steps, gvisor_steps, machine, memory, wasm_module, wasm_python
from bench.measure import Settings
from bench.report import SCHEMA, Row, table, to_json, write_json

OUT_DIR = Path(__file__).resolve().parent / "out"
#: Family name -> module with FAMILY, rows() and async run(settings) -> list[Row].
FAMILIES: dict[str, ModuleType] = {
    m.FAMILY: m for m in (wasm_module, wasm_python, docker_steps, gvisor_steps, memory, durable_steps)
}
#: Longest a family may take (s) before its rows are marked as errors; full and quick.
FAMILY_CAP_S = {"full": 180.0, "quick": 90.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations per row (for smoke tests)")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help=f"run only these families: {', '.join(FAMILIES)}")
    parser.add_argument("--json", metavar="PATH", type=Path,
                        help="write the JSON report here (instead of bench/out/)")
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in FAMILIES]
        if unknown or not names:
            parser.error(f"unknown family {', '.join(unknown) or '(none)'}: choose from {', '.join(FAMILIES)}")
        args.only = names
    return args


async def run_family(module: ModuleType, settings: Settings, cap_s: float) -> list[Row]:
    """The family's rows; every row marked ``error`` if it raised or ran past ``cap_s``."""
    try:
        async with asyncio.timeout(cap_s):
            rows: list[Row] = await module.run(settings)
            return rows
    except TimeoutError:
        reason = f"the family ran past its {cap_s:g} s cap"
    except Exception as exc:  # any failure becomes the rows' note; the other families still run
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    planned: list[Row] = module.rows()
    return [row.mark("error", reason) for row in planned]


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(quick=args.quick)
    started = datetime.now(UTC)
    clock = time.monotonic()
    info = machine.describe()
    rows: list[Row] = []
    for name, module in FAMILIES.items():
        if args.only and name not in args.only:
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        family_start = time.monotonic()
        rows += await run_family(module, settings, FAMILY_CAP_S["quick" if args.quick else "full"])
        print(f"bench: {name} took {time.monotonic() - family_start:.1f} s", file=sys.stderr, flush=True)
    info["load_after"] = machine.load_average()
    return {
        "schema": SCHEMA,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - clock, 1),
        "quick": args.quick,
        "only": args.only,
        "machine": info,
        "rows": to_json(rows),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    doc = asyncio.run(run_all(args))
    print(table(doc["rows"]))
    m = doc["machine"]
    print(f"\n{m['cores']} cores, {m['memory_mb']} MiB, load {m['load_before']} -> {m['load_after']}, "
          f"took {doc['duration_s']} s")
    if args.json:
        write_json(doc, args.json)
        print(f"wrote {args.json}")
    else:
        stamp = doc["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
        write_json(doc, OUT_DIR / f"{stamp}.json")
        write_json(doc, OUT_DIR / "latest.json")
        print(f"wrote {OUT_DIR / (stamp + '.json')} and {OUT_DIR / 'latest.json'}")
    return 1 if any(r["status"] == "error" for r in doc["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
