"""Running one engine's turn: a peer's script in the peers' venv, or Sluice in-process.

Each turn is bounded in time; after it, every process the turn started is killed (the
peer's script runs in its own process group, and so do the servers it starts). A turn
that cannot run here comes back with ``status`` ``n/a`` and the reason; one that broke,
with ``error`` and the reason. Nothing is ever made up.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.peers.common import ROOT, Settings, engine_report, spawn, stop

#: The peers' own venv and npm prefix (git-ignored; made by bench/peers/install.sh).
PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", ROOT / ".cache" / "peers"))
PEERS_PY = PEERS_DIR / "venv" / "bin" / "python"
#: Peer engines: name -> (label, module run in the peers' venv).
PEERS = {
    "celery": ("Celery 5.7 + Redis", "bench.peers.peer_celery"),
    "restate": ("Restate 1.7.12", "bench.peers.peer_restate"),
    "temporal": ("Temporal dev server", "bench.peers.peer_temporal"),
}
SLUICE = ("sluice-wasm", "sluice-docker")
ENGINES = (*PEERS, *SLUICE)
#: Longest one engine's turn may take (s), full and quick.
TURN_CAP_S = {False: 420.0, True: 180.0}
#: Sluice turns do more (ingest, fairness), each phase bounded: their cap, full and quick.
SLUICE_CAP_S = {False: 720.0, True: 180.0}


def run_peer(name: str, quick: bool) -> dict[str, Any]:
    label, module = PEERS[name]
    if not PEERS_PY.exists():
        return _not_here(name, label, f"the peers' venv {PEERS_PY.parent.parent} is missing: "
                                      "run `bash bench/peers/install.sh` (make bench-peers does)")
    cap = TURN_CAP_S[quick]
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        out, log_path = Path(tmp, "report.json"), Path(tmp, "turn.log")
        with log_path.open("ab") as log:
            argv = [str(PEERS_PY), "-m", module, "--out", str(out), *(["--quick"] if quick else [])]
            proc = spawn([*loopback_only(), *argv], log, new_session=True,
                         env={"BENCH_PEERS_DIR": str(PEERS_DIR), "PYTHONPATH": str(ROOT)})
            try:
                proc.wait(cap)
            except subprocess.TimeoutExpired:
                pass
            finally:
                stop(proc, grace_s=15, group=True)
        tail = log_path.read_text(errors="replace")[-1500:]
        if not out.exists():
            report = engine_report(name, label, version="?", durability="?")
            report.update(status="error", reason=f"the turn wrote no report in {cap:g} s (exit {proc.returncode})")
            report["notes"].append(tail)
            return report
        report = dict(json.loads(out.read_text()))
        report["network"] = "own network namespace, loopback only" if loopback_only() else "host, 127.0.0.1"
        if report["status"] == "error" and tail:
            report["notes"].append(tail)
        return report


def loopback_only() -> list[str]:
    """The prefix that runs a command in a network namespace of its own with only the
    loopback interface up (so a peer's own update checks or telemetry cannot leave the
    machine), or ``[]`` where that is not allowed (not root, no ``unshare``)."""
    global _NETNS
    if _NETNS is None:
        prefix = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        _NETNS = prefix if ok else []
    return _NETNS


_NETNS: list[str] | None = None


def run_sluice(name: str, quick: bool, *, ingest_too: bool) -> dict[str, Any]:
    from bench.peers import engine_sluice

    sandbox = name.removeprefix("sluice-")
    report = engine_sluice.new_report(sandbox)
    if sandbox == "docker" and not _docker_answers():
        report.update(status="n/a", reason="no Docker engine answers `docker info` (make docker starts one)")
        return report
    cap = SLUICE_CAP_S[quick]

    async def turn() -> None:
        async with asyncio.timeout(cap):
            await engine_sluice.measure(sandbox, Settings.make(quick), report, ingest_too=ingest_too)

    try:
        asyncio.run(turn())
    except Exception as exc:  # the reason goes into the report; the other engines still run
        notes = list(getattr(exc, "__notes__", []))
        if isinstance(exc, TimeoutError):
            reason = f"the turn ran past its {cap:g} s cap; the phases it finished are kept"
        else:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]
        if report["burst"] and report["unloaded"]:
            report["partial"] = reason  # the phases after it are missing; the tables say why
        else:
            report.update(status="error", reason=reason)
        report["notes"].extend(notes)
    return report


def _not_here(name: str, label: str, reason: str) -> dict[str, Any]:
    report = engine_report(name, label, version="?", durability="?")
    report.update(status="n/a", reason=reason)
    return report


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


def settle(seconds: float = 3.0) -> None:
    """A pause between turns so one engine's shutdown does not load the next one's start."""
    time.sleep(seconds)
