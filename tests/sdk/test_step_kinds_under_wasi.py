"""Every step kind works in the real guest, CPython for WASI (pure-Python msgpack, no dup2),
with checkpointing and parallel steps; one call each, driven like the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandboxes.base import Limits, Target
from sandboxes.wasm import WasmSandbox
from sluice import protocol
from tests.sandboxes import wasm_fixtures as fx

wasm_cache, wasm_sandbox = fx.wasm_cache, fx.wasm_sandbox

pytestmark = pytest.mark.slow  # compiles CPython for WASI once per session

APP = """
import sluice

app = sluice.App("kinds")


@app.function(id="all", checkpoint=True, allow_hosts=["api.example.com"])
def every_kind(ctx):
    a = ctx.step.run("a", lambda: 1)
    b = ctx.step.run("b", lambda: a + 1)
    ctx.step.sleep_until("until", "2026-03-01T09:00:00Z")
    ctx.step.sleep("nap", "1h")
    got = ctx.step.wait_for_event("wait", event="x/y", timeout="1d")
    sent = ctx.step.send_event("send", {"name": "x/z"})
    out = ctx.step.invoke("inv", function="other")
    resp = ctx.step.fetch("get", "https://api.example.com/", body={"q": 1})
    pair = ctx.step.parallel(("p", lambda: "p"), ("q", lambda: "q"))
    return [a, b, got.name, sent.ids, out, resp.json(), pair]
"""
NOW = 1_767_225_600_000


async def test_every_step_kind_reports_its_op_in_the_wasm_guest(wasm_sandbox: WasmSandbox, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    target = Target("python", str(tmp_path))
    steps: dict[str, Any] = {}

    async def call(target_id: str | None = None) -> list[dict[str, Any]]:
        request = {"v": 1, "kind": "call", "function": "all", "event": {"name": "e", "data": {}}, "steps": steps,
                   "run": {"id": "r", "attempt": 0}, "target": target_id, "now_ms": NOW}
        result = await wasm_sandbox.run(target, protocol.pack(request), Limits())
        assert result.ok, result.stderr.decode()
        return protocol.decode_response(result.stdout)["ops"]

    answers = {"sleep": None, "wait_for_event": {"name": "x/y"}, "send_event": {"ids": ["e1"]},
               "invoke": "out", "fetch": {"status": 200, "headers": {}, "body": b'{"ok": true}'}}
    kinds = []
    for _ in range(12):
        ops = await call()
        kinds.append([op["op"] for op in ops])
        if ops[-1]["op"] in ("done", "error"):
            break
        for op in ops:
            if op["op"] == "planned":
                (ran,) = await call(op["id"])
                steps[ran["id"]] = {"data": ran["data"]}
            else:
                steps[op["id"]] = {"data": op["data"] if op["op"] == "step" else answers[op["op"]]}
    assert kinds == [["step", "step", "sleep"], ["sleep"], ["wait_for_event"], ["send_event"], ["invoke"],
                     ["fetch"], ["planned", "planned"], ["done"]]
    assert ops[-1]["data"] == [1, 2, "x/y", ["e1"], "out", {"ok": True}, ["p", "q"]]
