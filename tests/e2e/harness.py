"""Drive a real `sluice dev` process through its public HTTP API and CLI.

Each :class:`DevServer` is a subprocess running exactly what a user runs
(``sluice dev APP --port P --data-dir D``), with its own embedded nats-server and
SQLite history under a temp dir. Helpers speak HTTP to it with urllib.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests import processes

ROOT = Path(__file__).resolve().parents[2]
SLUICE = str(Path(sys.executable).with_name("sluice"))
FINAL = {"completed", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: Any = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            return err.code, json.loads(text)
        except ValueError:
            return err.code, text.decode("utf-8", "replace")


class DevServer:
    def __init__(self, app_dir: Path, data_dir: Path, *, sandbox: str = "wasm",
                 env: dict[str, str] | None = None, port: int | None = None, args: Sequence[str] = ()) -> None:
        self.app_dir = app_dir
        self.args = list(args)
        self.data_dir = data_dir
        self.sandbox = sandbox
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SLUICE_LOG_FORMAT": "json", "SLUICE_BACKOFF_BASE_MS": "0", **(env or {})}
        self.log_path = data_dir / f"dev-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, expect_functions: int = 1, timeout: float = 90) -> DevServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [SLUICE, "dev", str(self.app_dir), "--port", str(self.port), "--sandbox", self.sandbox,
                 "--data-dir", str(self.data_dir), "--no-reload", *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice dev exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            try:
                status, body = http("GET", self.url + "/v1/functions", timeout=2)
                if status == 200 and len(body["data"]) >= expect_functions:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"sluice dev not ready in {timeout} s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would (no clean-up runs), and wait
        until the embedded nats-server (in a session of its own, told by the kernel to
        stop when its parent dies) has let go of the data dir."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        deadline = time.monotonic() + 20
        while processes.naming(str(self.data_dir)) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    # --- API helpers ----------------------------------------------------------------

    def send(self, event: Any, key: str = "dev") -> list[str]:
        status, body = http("POST", f"{self.url}/e/{key}", event)
        assert status == 200, body
        return list(body["ids"])

    def runs(self, **query: str) -> list[dict[str, Any]]:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        status, body = http("GET", f"{self.url}/v1/runs?{qs}")
        assert status == 200, body
        return list(body["data"])

    def run(self, run_id: str) -> dict[str, Any]:
        status, body = http("GET", f"{self.url}/v1/runs/{run_id}")
        assert status == 200, body
        return dict(body["data"])

    def event(self, event_id: str) -> dict[str, Any] | None:
        status, body = http("GET", f"{self.url}/v1/events/{event_id}")
        return dict(body["data"]) if status == 200 else None

    def status_of(self, event_id: str) -> str | None:
        """The status of the first run ``event_id`` started (``None`` before it has one)."""
        runs = (self.event(event_id) or {}).get("runs", [])
        return runs[0]["status"] if runs else None

    def wait_runs_for(self, event_id: str, count: int, *, timeout: float = 60) -> list[dict[str, Any]]:
        """The runs ``event_id`` started, once ``count`` of them have finished."""
        deadline = time.monotonic() + timeout
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            ev = self.event(event_id)
            runs = ev["runs"] if ev else []
            if len(runs) >= count and all(r["status"] in FINAL for r in runs):
                return [self.run(r["id"]) for r in runs]
            time.sleep(0.1)
        raise AssertionError(f"runs of {event_id} not finished in {timeout} s: {runs}\n{self.logs()[-3000:]}")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SLUICE, *args], capture_output=True, text=True, timeout=30,
                              env={**self.env, "SLUICE_URL": self.url}, check=False)
