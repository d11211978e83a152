"""The guests every benchmark runs, the requests they get, and checks of their answers.

* :data:`TINY_APP` — ``bench/apps/tiny``, a Python app whose ``work`` function runs one
  small step: one call answers with one ``step`` op (Docker and Python-on-WASI rows).
* :data:`DONE_WAT` — ``bench/apps/done.wat``, a WASI module that drains stdin and writes
  a fixed ``done`` response (the WASM tiny-module rows).

The checks run outside the timed region; a wrong answer raises
:class:`bench.measure.BenchError`, since timing a broken call measures nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from bench.measure import BenchError, Call, TimingsMean, Verify
from bench.report import Row
from sandboxes.base import Limits, Result, Sandbox, Target
from sluice import protocol

#: Checks a guest's stdout; raises BenchError naming ``where`` if it is wrong.
Check = Callable[[bytes, str], None]

APPS = Path(__file__).resolve().parent / "apps"
TINY_APP = APPS / "tiny"
DONE_WAT = APPS / "done.wat"

#: One call of the tiny app's ``work`` function with no memoized steps.
WORK_REQUEST = protocol.pack({
    "v": 1, "kind": "call", "function": "work",
    "event": {"name": "bench/work", "data": {"a": 20, "b": 22}},
    "steps": {}, "run": {"id": "bench-run", "attempt": 0}, "target": None,
})
#: A call of ``kernel``: the guest answers with its /proc/version.
KERNEL_REQUEST = protocol.pack({
    "v": 1, "kind": "call", "function": "kernel",
    "event": {"name": "bench/kernel", "data": {}},
    "steps": {}, "run": {"id": "bench-run", "attempt": 0}, "target": None,
})


def _op(stdout: bytes, where: str) -> dict[str, object]:
    try:
        response = protocol.decode_response(stdout)
    except protocol.ProtocolError as exc:
        raise BenchError(f"{where}: not a protocol response ({exc}): {stdout[:200]!r}") from None
    ops = response["ops"]
    # One op; or a step and the function's result after it (the last step's call returns it too).
    if not (len(ops) == 1 or (len(ops) == 2 and ops[0]["op"] == "step" and ops[1]["op"] == "done")):
        raise BenchError(f"{where}: expected one op (or a step and done), got {[op['op'] for op in ops]}")
    return dict(ops[0])


def check_work(stdout: bytes, where: str) -> None:
    """``stdout`` must be the ``work`` step's answer: a ``step`` op with ``{"sum": 42}``."""
    op = _op(stdout, where)
    if op.get("op") != "step" or op.get("data") != {"sum": 42}:
        raise BenchError(f"{where}: unexpected answer {op!r}")


def check_done(stdout: bytes, where: str) -> None:
    """``stdout`` must be a single ``done`` op."""
    op = _op(stdout, where)
    if op.get("op") != "done":
        raise BenchError(f"{where}: unexpected answer {op!r}")


def kernel_of(stdout: bytes, where: str) -> str:
    """The ``/proc/version`` a ``kernel`` call's ``done`` op reported."""
    op = _op(stdout, where)
    data = op.get("data")
    if op.get("op") != "done" or not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise BenchError(f"{where}: unexpected answer to the kernel call {op!r}")
    return str(data["version"])


def sandbox_call(sandbox: Sandbox, target: Target, row: Row, timings: TimingsMean, *,
                 check: Check, limits: Limits, request: bytes = WORK_REQUEST) -> Call:
    """A call of ``target`` through ``sandbox`` whose answer is checked.

    Counts, in ``row.extra``, the calls made (``calls``) and those a pre-started guest
    served (``served_warm``, from ``Result.warm``); ``Result.timings`` go to ``timings``.
    """
    row.extra.setdefault("calls", 0)
    row.extra.setdefault("served_warm", 0)

    async def call() -> Verify:
        result = await sandbox.run(target, request, limits)

        def verify() -> None:
            check_result(result, row.name, check)
            timings.add(result.timings)
            row.extra["calls"] += 1
            row.extra["served_warm"] += int(result.warm)

        return verify

    return call


def check_result(result: Result, where: str, check: Check) -> None:
    """Raise :class:`BenchError` unless ``result`` is ok and its stdout passes ``check``."""
    if not result.ok:
        tail = result.stderr[-300:].decode("utf-8", "replace")
        raise BenchError(f"{where}: guest failed: {result.error}: {tail}")
    check(result.stdout, where)


async def served_warm(call: Call, row: Row, *, tries: int = 10, pause_s: float = 0.1) -> bool:
    """Call until a pre-started guest serves one (a pool may fill in the background);
    false if none did within ``tries`` calls ``pause_s`` apart."""
    for _ in range(tries):
        (await call())()
        if row.extra.get("served_warm"):
            return True
        await asyncio.sleep(pause_s)
    return False
