"""A ``sluice dev`` process for the benchmark, and the HTTP calls the benchmark makes to it.

The server is exactly what a user runs (``sluice dev APP --sandbox S --data-dir D
--no-reload``): one node with every role, an embedded ``nats-server`` with JetStream on
file storage under ``D/nats``, SQLite history. It runs in its own process group on
127.0.0.1 and :meth:`SluiceServer.stop` kills the whole group.

Every HTTP call has a timeout; an answer other than 200 raises ``RuntimeError`` naming
the call and the status.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.peers.common import ROOT, children, free_port, rss_mb, spawn, stop

APP_DIR = Path(__file__).resolve().parent / "apps"
SLUICE = str(Path(sys.executable).with_name("sluice"))
MAIN = "bench/three-steps"
OTHER = "bench/other"
FINAL = {"completed", "failed", "cancelled"}
HTTP_TIMEOUT_S = 30.0


class SluiceServer:
    """``sluice dev`` on a free port; ``start()`` returns once both bench functions are listed
    and ``/readyz`` says the node (and its executor processes, if any) are ready."""

    def __init__(self, data_dir: Path, *, sandbox: str, log_level: str = "warning", executors: int = 0) -> None:
        self.data_dir = data_dir
        self.sandbox = sandbox
        self.executors = executors
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "dev.log"
        self.env = {"SLUICE_LOG_FORMAT": "json", "SLUICE_LOG_LEVEL": log_level}
        self.proc: Any = None

    async def start(self, session: aiohttp.ClientSession, timeout_s: float = 120.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = spawn([SLUICE, "dev", str(APP_DIR), "--port", str(self.port), "--sandbox", self.sandbox,
                               "--data-dir", str(self.data_dir), "--no-reload", "--executors", str(self.executors)],
                              log, env=self.env, cwd=ROOT,
                              new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice dev exited with {self.proc.returncode}: {self.tail()}")
            try:
                body = await get_json(session, f"{self.url}/v1/functions")
                # Ready: the node and, with --executors, its executor processes are up.
                if len(body["data"]) >= 2 and (await get_json(session, f"{self.url}/readyz"))["status"] == "ready":
                    return
            except (OSError, RuntimeError, aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"sluice dev not ready in {timeout_s:g} s: {self.tail()}")

    def stop(self) -> None:
        stop(self.proc, grace_s=20.0, group=True)

    def tail(self, chars: int = 1500) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]

    def memory_mb(self) -> tuple[float | None, float | None]:
        """Resident MiB of the node (its process plus its executor processes, if any) and of
        its nats-server child (``None``: gone)."""
        if self.proc is None:
            return None, None
        node = rss_mb(self.proc.pid)
        kids = {pid: _cmdline(pid) for pid in children(self.proc.pid)}
        nats = [rss_mb(pid) for pid, cmd in kids.items() if "nats-server" in cmd]
        if node is not None:
            node += sum(rss_mb(pid) or 0.0 for pid, cmd in kids.items() if "runtime.cli node" in cmd)
        return node, next((m for m in nats if m is not None), None)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# --- HTTP ---------------------------------------------------------------------------------

async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as resp:
        if resp.status != 200:
            raise RuntimeError(f"GET {url}: {resp.status} {(await resp.text())[:300]}")
        return await resp.json()


async def post_events(session: aiohttp.ClientSession, url: str, events: Any) -> list[str]:
    """POST one event or a list to ``/e/dev``; the ids, once JetStream acknowledged them."""
    data = json.dumps(events).encode()
    async with session.post(f"{url}/e/dev", data=data, headers={"content-type": "application/json"},
                            timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as resp:
        if resp.status != 200:
            raise RuntimeError(f"POST /e/dev: {resp.status} {(await resp.text())[:300]}")
        return list((await resp.json())["ids"])


async def runs_by_event(session: aiohttp.ClientSession, url: str, function: str, *,
                        finished_only: bool = True, max_pages: int = 20) -> dict[str, dict[str, Any]]:
    """Every run of ``function`` (finished ones only with ``finished_only``), by event id."""
    out: dict[str, dict[str, Any]] = {}
    cursor = ""
    for _ in range(max_pages):
        body = await get_json(session, f"{url}/v1/runs?function={function}&limit=1000&cursor={cursor}")
        for run in body["data"]:
            if not finished_only or run["status"] in FINAL:
                out[run["event_id"]] = run
        cursor = body.get("cursor") or ""
        if not cursor:
            break
    return out


async def any_unfinished(session: aiohttp.ClientSession, url: str, function: str) -> bool:
    """Whether ``function`` has a run that is queued or running (one-row queries)."""
    for status in ("queued", "running"):
        body = await get_json(session, f"{url}/v1/runs?function={function}&status={status}&limit=1")
        if body["data"]:
            return True
    return False


async def wait_event_run(session: aiohttp.ClientSession, url: str, event_id: str, *,
                         timeout_s: float, poll_s: float = 0.01) -> dict[str, Any] | None:
    """The finished run ``event_id`` started, or ``None`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with session.get(f"{url}/v1/events/{event_id}",
                               timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as resp:
            if resp.status == 200:
                runs = (await resp.json())["data"]["runs"]
                if runs and all(r["status"] in FINAL for r in runs):
                    return dict(runs[0])
            else:
                await resp.read()
        await asyncio.sleep(poll_s)
    return None
