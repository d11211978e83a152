"""A pre-started CPython instance serves exactly one call, under that call's own deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sandboxes.base import Limits, MiB, Result, Target
from sandboxes.wasm import WasmSandbox
from sluice import protocol
from tests.sandboxes import wasm_fixtures as fx

wasm_cache, wasm_sandbox = fx.wasm_cache, fx.wasm_sandbox

pytestmark = pytest.mark.slow  # compiles CPython for WASI once per session (about 3-5 s)

COUNTER_APP = '''
import os
import sys
import time

import sluice

app = sluice.App("counter")
CALLS = []  # module-level: it would grow if an instance served a second call
print("counter app imported")  # the shim sends it to stderr


@app.function(id="count")
def count(ctx):
    CALLS.append(1)
    return len(CALLS)


@app.function(id="spin")
def spin(ctx):
    while True:
        pass


@app.function(id="nap")
def nap(ctx):
    time.sleep(ctx.event.data["s"])
    return "rested"


@app.function(id="exit-3")
def exit_3(ctx):
    sys.stderr.write("leaving with 3\\n")
    sys.stderr.flush()
    os._exit(3)


@app.function(id="big")
def big(ctx):
    return "x" * ctx.event.data["bytes"]


HOARD = []


@app.function(id="hog")
def hog(ctx):
    while True:
        HOARD.append(bytearray(1 << 20))
'''

CALL = Limits(timeout_s=30)


def call(function: str, data: dict[str, Any] | None = None) -> bytes:
    return protocol.pack({
        "v": 1, "kind": "call", "function": function,
        "event": {"name": "counter/go", "data": data or {}},
        "steps": {}, "run": {"id": "run-1", "attempt": 0}, "target": None,
    })


def returned(result: Result) -> Any:
    """What the function returned, from a successful call's single op."""
    assert result.ok, (result.error, result.stderr[-800:])
    (op,) = protocol.decode_response(result.stdout)["ops"]
    return op["data"]


def prestart_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sluice-wasm-prestart"]


@pytest.fixture
def counter_app(tmp_path: Path) -> Target:
    (tmp_path / "app.py").write_text(COUNTER_APP)
    return Target("python", str(tmp_path))


async def warmed(sandbox: WasmSandbox, target: Target, limits: Limits = CALL) -> None:
    """Run one call (cold: it starts the pool), then give the pre-started guests time to import."""
    first = await sandbox.run(target, call("count"), limits)
    assert returned(first) == 1 and not first.warm
    await asyncio.sleep(1.0)


async def test_every_call_after_the_first_is_served_warm_by_a_fresh_instance(
    wasm_sandbox: WasmSandbox, counter_app: Target
) -> None:
    await warmed(wasm_sandbox, counter_app)
    results = []
    for _ in range(4):
        results.append(await wasm_sandbox.run(counter_app, call("count"), CALL))
        await asyncio.sleep(0.5)  # a paced caller: the pool refills in between
    assert [returned(r) for r in results] == [1, 1, 1, 1]  # the module-level list starts empty every time
    assert all(r.warm for r in results)
    for r in results:
        assert b"counter app imported" in r.stderr  # import-time output is still the call's log
        assert set(r.timings) >= {"acquire_ms", "run_ms", "prestarted_ms"}
        assert r.timings["acquire_ms"] < 50


async def test_idle_time_before_the_hand_over_does_not_count_against_the_deadline(
    wasm_sandbox: WasmSandbox, counter_app: Target
) -> None:
    limits = Limits(timeout_s=2)
    await warmed(wasm_sandbox, counter_app, limits)
    await asyncio.sleep(2.5)  # the pre-started guest now waited longer than the whole timeout
    result = await wasm_sandbox.run(counter_app, call("nap", {"s": 0.3}), limits)
    assert result.warm and returned(result) == "rested"


async def test_a_warm_guest_spinning_is_stopped_by_the_engine_from_the_hand_over(
    wasm_sandbox: WasmSandbox, counter_app: Target
) -> None:
    limits = Limits(timeout_s=2)
    await warmed(wasm_sandbox, counter_app, limits)
    await asyncio.sleep(2.5)  # idle longer than the timeout: the deadline must start at the hand-over
    started = time.monotonic()
    result = await wasm_sandbox.run(counter_app, call("spin"), limits)
    elapsed = time.monotonic() - started
    assert result.warm and result.timed_out and result.error == "timed out after 2 s"
    assert 1.95 <= elapsed < 6, f"stopped after {elapsed:.2f} s"


async def test_warm_guests_fail_the_way_cold_ones_do(wasm_sandbox: WasmSandbox, counter_app: Target) -> None:
    limits = Limits(timeout_s=30, memory_mb=64, max_stdout_bytes=256 * 1024)
    await warmed(wasm_sandbox, counter_app, limits)
    cases = [
        (call("exit-3"), "exited with code 3"),
        (b"\xc1 garbage", "exited with code 2"),
        (call("big", {"bytes": 1 * MiB}), f"stdout exceeded {256 * 1024} bytes"),
        (call("hog"), "out of memory (limit 64 MiB)"),
    ]
    for request, error in cases:
        result = await wasm_sandbox.run(counter_app, request, limits)
        assert result.warm and not result.ok, error
        assert result.error is not None and result.error.startswith(error), (result.error, result.stderr[-300:])
        assert len(result.stdout) <= 256 * 1024
        await asyncio.sleep(1.0)
    garbage = await wasm_sandbox.run(counter_app, b"\xc1 garbage", limits)
    assert garbage.exit_code == 2 and garbage.stdout == b"" and b"bad request: not msgpack" in garbage.stderr


async def test_an_answer_just_under_the_stdout_cap_fits_exactly(
    wasm_sandbox: WasmSandbox, counter_app: Target
) -> None:
    limits = Limits(timeout_s=30, max_stdout_bytes=64 * 1024)
    await warmed(wasm_sandbox, counter_app, limits)
    probe = await wasm_sandbox.run(counter_app, call("big", {"bytes": 1000}), limits)
    overhead = len(probe.stdout) - 1000  # msgpack framing of the response around the string
    await asyncio.sleep(1.0)
    result = await wasm_sandbox.run(counter_app, call("big", {"bytes": 64 * 1024 - overhead}), limits)
    assert result.warm and result.ok and len(result.stdout) == 64 * 1024


async def test_a_target_with_warm_false_never_uses_a_pre_started_guest(
    wasm_cache: Path, counter_app: Target
) -> None:
    cold = Target("python", counter_app.ref, warm=False)
    async with WasmSandbox(cache_dir=wasm_cache) as sandbox:
        for _ in range(3):
            result = await sandbox.run(cold, call("count"), CALL)
            assert returned(result) == 1 and not result.warm
            assert not prestart_threads()
            assert set(result.timings) >= {"acquire_ms", "run_ms"}


async def test_close_stops_the_guests_waiting_for_a_call(wasm_cache: Path, counter_app: Target) -> None:
    sandbox = WasmSandbox(cache_dir=wasm_cache, prestart_per_target=2)
    await warmed(sandbox, counter_app)
    assert len(prestart_threads()) == 2
    await sandbox.close()
    assert not prestart_threads()


async def test_an_app_that_cannot_start_runs_cold_and_is_not_restarted_in_a_loop(
    wasm_sandbox: WasmSandbox, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text("import sluice\napp = sluice.App('broken')\nwhile True:\n    pass\n")
    target = Target("python", str(tmp_path))
    limits = Limits(timeout_s=1)
    first = await wasm_sandbox.run(target, call("count"), limits)
    assert first.timed_out and not first.warm
    for _ in range(100):  # the pre-started guests time out at import too (after 1 s), and stay gone
        if not prestart_threads():
            break
        await asyncio.sleep(0.1)
    assert not prestart_threads()
    second = await wasm_sandbox.run(target, call("count"), limits)
    assert second.timed_out and not second.warm


async def test_reuse_is_an_explicit_opt_in_per_app_and_keeps_per_call_deadlines(
    wasm_cache: Path, counter_app: Target, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other_dir = tmp_path_factory.mktemp("not-opted-in")
    (other_dir / "app.py").write_text(COUNTER_APP)
    other = Target("python", str(other_dir))
    limits = Limits(timeout_s=2)
    async with WasmSandbox(cache_dir=wasm_cache, prestart_per_target=1,
                           reuse_instances_for=[counter_app.ref], reuse_max_calls=4) as sandbox:
        await warmed(sandbox, counter_app, limits)
        await warmed(sandbox, other, limits)
        reused = [await sandbox.run(counter_app, call("count"), limits) for _ in range(3)]
        assert [returned(r) for r in reused] == [1, 2, 3]  # one instance, its state kept: the opt-in
        assert all(r.warm for r in reused)
        assert b"counter app imported" not in reused[1].stderr  # each call gets only its own output
        fresh = []
        for _ in range(2):
            fresh.append(await sandbox.run(other, call("count"), limits))
            await asyncio.sleep(1.0)
        assert [returned(r) for r in fresh] == [1, 1]  # the app not named stays single-use
        await asyncio.sleep(2.5)  # idle longer than the timeout: it must not count
        fourth = await sandbox.run(counter_app, call("count"), limits)
        assert fourth.warm and returned(fourth) == 4  # the last call reuse_max_calls allows
        await asyncio.sleep(1.0)
        replaced = await sandbox.run(counter_app, call("count"), limits)
        assert replaced.warm and returned(replaced) == 1  # a new instance after reuse_max_calls
        started = time.monotonic()
        spun = await sandbox.run(counter_app, call("spin"), limits)
        assert spun.timed_out and spun.error == "timed out after 2 s"
        assert time.monotonic() - started < 6
        await asyncio.sleep(1.0)
        after = await sandbox.run(counter_app, call("count"), limits)
        assert after.warm and returned(after) == 1  # the one that timed out is gone


async def test_calls_with_other_output_caps_share_the_pre_started_guests(
    wasm_sandbox: WasmSandbox, counter_app: Target
) -> None:
    introspect = await wasm_sandbox.run(counter_app, protocol.pack({"v": 1, "kind": "introspect"}), CALL)
    assert introspect.ok and not introspect.warm
    await asyncio.sleep(1.0)
    step = await wasm_sandbox.run(counter_app, call("count"), Limits(timeout_s=30, max_stdout_bytes=4096))
    assert step.warm and returned(step) == 1


async def test_a_guest_whose_start_up_wrote_past_a_calls_cap_is_not_handed_that_call(
    wasm_cache: Path, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(COUNTER_APP.replace('print("counter app imported")', 'print("x" * 5000)'))
    target = Target("python", str(tmp_path))
    async with WasmSandbox(cache_dir=wasm_cache) as sandbox:
        await warmed(sandbox, target)
        small = await sandbox.run(target, call("count"), Limits(timeout_s=30, max_stderr_bytes=1000))
        assert not small.warm and small.error == "stderr exceeded 1000 bytes"
        roomy = await sandbox.run(target, call("count"), CALL)
        assert roomy.warm and returned(roomy) == 1
    assert not prestart_threads()  # the guest passed over was stopped, not left waiting


async def test_an_app_that_opts_in_has_its_calls_wait_for_its_reused_guests(
    wasm_cache: Path, counter_app: Target
) -> None:
    reuse = Target("python", counter_app.ref, reuse=True)
    async with WasmSandbox(cache_dir=wasm_cache, prestart_per_target=2) as sandbox:
        await warmed(sandbox, reuse, CALL)
        first = await sandbox.run(reuse, call("count"), CALL)
        await asyncio.sleep(2.0)  # the pool's second guest imports the app
        results = [first, *await asyncio.gather(*(sandbox.run(reuse, call("count"), CALL) for _ in range(12)))]
        assert all(r.warm for r in results)  # no call ran cold while both guests were busy
        counts = [returned(r) for r in results]
        # Exactly two guests answered all 13 calls, each counting its own calls (1..a and
        # 1..b, a + b = 13): a third interpreter would show a third 1.
        assert counts.count(1) == 2, counts
        ones_and_rest = sorted(counts)
        a = max(c for c in counts if counts.count(c) == 1) if any(counts.count(c) == 1 for c in counts) else 0
        assert sorted([*range(1, a + 1), *range(1, 13 - a + 1)]) == ones_and_rest, counts
        assert len(prestart_threads()) <= 2
