"""Run the real guest shim as a subprocess, the way a sandbox does, and act as the host."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.protocol import decode_response, frame, pack, read_frame, step_id, unpack

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: str

    @property
    def response(self) -> Any:
        return unpack(self.stdout)

    @property
    def ops(self) -> list[dict[str, Any]]:
        """The response's ops, each checked by the protocol's own validator."""
        return decode_response(self.stdout)["ops"]

    @property
    def op(self) -> dict[str, Any]:
        ops = self.response["ops"]
        assert len(ops) == 1, ops
        return ops[0]  # type: ignore[no-any-return]


def write_app(directory: Path, source: str, name: str = "app.py") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(source))
    return directory


#: What the WASM sandbox runs: msgpack's pure-Python fallback instead of its C extension.
PURE_MSGPACK = {**ENV, "MSGPACK_PUREPYTHON": "1"}


def run_shim(app_dir: Path, request: dict[str, Any] | bytes, *args: str, timeout: float = 30,
             env: dict[str, str] | None = None) -> Result:
    """One-shot: the request on stdin, the response from stdout."""
    data = request if isinstance(request, bytes) else pack(request)
    proc = subprocess.run([PYTHON, "-m", "sluice.shim", "--app-dir", str(app_dir), *args], input=data,
                          capture_output=True, timeout=timeout, env=env or ENV, cwd=REPO, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


def call(function: str, event: dict[str, Any] | None = None, steps: dict[str, Any] | None = None,
         attempt: int = 0, *, target: str | None = None, now_ms: int | None = None) -> dict[str, Any]:
    request = {"v": 1, "kind": "call", "function": function,
               "event": event if event is not None else {"name": "test/event", "data": {}},
               "steps": steps or {}, "run": {"id": "run-1", "attempt": attempt}, "target": target}
    if now_ms is not None:
        request["now_ms"] = now_ms
    return request


@dataclass
class Run:
    """What a host saw while driving one run to its end."""
    final: dict[str, Any]
    #: every op of every call, in order
    ops: list[dict[str, Any]] = field(default_factory=list)
    #: the ops of each call, one list per call
    calls: list[list[dict[str, Any]]] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)
    #: each call's stderr
    stderr: list[str] = field(default_factory=list)


def drive(app_dir: Path, function: str, event: dict[str, Any], retries: int = 3, max_calls: int = 20,
          env: dict[str, str] | None = None) -> Run:
    """Call the function again and again, like the host: memoize each step's output,
    retry a retriable step error up to ``retries`` times, memoize a final step error.
    A call may answer with several ops (a new step, then the function's ``done`` or
    ``error``); each is applied in order. Returns at the first ``done`` or ``error`` op,
    which must be its call's last op."""
    run = Run(final={})
    attempt = 0
    for _ in range(max_calls):
        result = run_shim(app_dir, call(function, event, run.steps, attempt), env=env)
        assert result.code == 0, result.stderr
        ops = result.ops
        assert ops, "an untargeted call answered with no op"
        run.calls.append(ops)
        run.stderr.append(result.stderr)
        for index, op in enumerate(ops):
            run.ops.append(op)
            if op["op"] == "step":
                run.steps[op["id"]] = {"data": op["data"]}
                attempt = 0
            elif op["op"] == "step_error":
                assert index == len(ops) - 1, f"a step_error op must end its call: {ops}"
                if op["retriable"] and attempt < retries:
                    attempt += 1
                else:
                    run.steps[op["id"]] = {"error": op["error"]}
                    attempt = 0
            else:
                assert op["op"] in ("done", "error"), f"unexpected op {op}"
                assert index == len(ops) - 1, f"a {op['op']} op must end its call: {ops}"
                run.final = op
                return run
    raise AssertionError(f"no done/error op after {max_calls} calls: {run.ops}")


class Server:
    """``--serve``: framed requests over a pipe to one long-lived shim."""

    def __init__(self, app_dir: Path) -> None:
        self.proc = subprocess.Popen([PYTHON, "-m", "sluice.shim", "--app-dir", str(app_dir), "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=ENV, cwd=REPO)

    def request(self, request: dict[str, Any] | bytes) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(frame(request if isinstance(request, bytes) else pack(request)))
        self.proc.stdin.flush()
        body = read_frame(self.proc.stdout)
        return None if body is None else unpack(body)

    def close(self, timeout: float = 10) -> tuple[int, str]:
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout)
        err = self.proc.stderr.read().decode("utf-8", "replace")
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code, err


__all__ = ["ENV", "PURE_MSGPACK", "PYTHON", "REPO", "Result", "Run", "Server", "call", "drive", "run_shim",
           "step_id", "write_app"]
