"""A warm pool serves repeated calls from one running container and replaces it when it
wears out, times out, crashes or floods its output."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sandboxes.base import Limits, MiB, Target
from sandboxes.docker import DockerSandbox, PoolConfig
from tests.sandboxes import docker_fixtures as fx

docker_engine, make_sandbox, warm_app = fx.docker_engine, fx.make_sandbox, fx.warm_app

pytestmark = pytest.mark.docker

CALL = Limits(timeout_s=20)
Make = Callable[..., DockerSandbox]


async def test_a_second_call_is_served_warm_by_the_same_container_and_faster(
    make_sandbox: Make, warm_app: Target
) -> None:
    sandbox = make_sandbox()
    first = await sandbox.run(warm_app, fx.call("echo", n=1), CALL)
    second = await sandbox.run(warm_app, fx.call("echo", n=2), CALL)
    assert (first.warm, second.warm) == (False, True)
    one, two = fx.step_data(first), fx.step_data(second)
    # Same container, but each call starts from the state right after the app's import.
    assert one["host"] == two["host"] and (one["calls"], two["calls"]) == (1, 1)
    assert set(second.timings) >= {"prepare_ms", "acquire_ms", "run_ms"}
    assert second.timings["acquire_ms"] < first.timings["acquire_ms"]
    assert second.duration_ms < first.duration_ms / 5, (first.timings, second.timings)
    # Each call gets its own logs; what the app printed at import goes with the first.
    assert b"warm app loaded" in first.stderr and b"echo 1" in first.stderr
    assert second.stderr == b"echo 2\n"
    assert fx.pooled(sandbox) != [] and sandbox.pool.stats()["idle"] == 1


async def test_a_container_is_replaced_after_max_calls(make_sandbox: Make, warm_app: Target) -> None:
    sandbox = make_sandbox(pool=PoolConfig(max_calls=2))
    hosts = [fx.step_data(await sandbox.run(warm_app, fx.call("echo", n=i), CALL))["host"] for i in range(4)]
    assert hosts[0] == hosts[1] and hosts[2] == hosts[3] and hosts[1] != hosts[2]


async def test_a_timeout_in_a_warm_container_kills_it_and_the_next_call_gets_a_fresh_one(
    make_sandbox: Make, warm_app: Target
) -> None:
    sandbox = make_sandbox()
    before = fx.step_data(await sandbox.run(warm_app, fx.call("echo", n=1), CALL))["host"]
    spun = await sandbox.run(warm_app, fx.call("spin"), Limits(timeout_s=1))
    assert spun.warm and spun.timed_out and spun.error == "timed out after 1 s" and spun.exit_code is None
    after = fx.step_data(await sandbox.run(warm_app, fx.call("echo", n=2), CALL))
    assert after["host"] != before and after["calls"] == 1
    await asyncio.sleep(0.5)  # removal runs in the background
    assert not any(cid.startswith(before) for cid in fx.pooled(sandbox))


async def test_a_crash_in_a_step_retires_the_container_with_its_exit_code_and_logs(
    make_sandbox: Make, warm_app: Target
) -> None:
    sandbox = make_sandbox()
    before = fx.step_data(await sandbox.run(warm_app, fx.call("echo", n=1), CALL))["host"]
    crashed = await sandbox.run(warm_app, fx.call("crash"), CALL)
    assert crashed.warm and not crashed.ok and crashed.error == "exited with code 7"
    assert crashed.exit_code == 7 and crashed.stdout == b"" and b"leaving with 7" in crashed.stderr
    assert fx.step_data(await sandbox.run(warm_app, fx.call("echo", n=2), CALL))["host"] != before


async def test_an_answer_over_the_stdout_cap_fails_and_retires_the_container(
    make_sandbox: Make, warm_app: Target
) -> None:
    sandbox = make_sandbox()
    before = fx.step_data(await sandbox.run(warm_app, fx.call("echo", n=1), CALL))["host"]
    big = await sandbox.run(warm_app, fx.call("big", bytes=2 * MiB), Limits(timeout_s=20, max_stdout_bytes=MiB))
    assert big.error == f"stdout exceeded {MiB} bytes" and len(big.stdout) == MiB
    assert fx.step_data(await sandbox.run(warm_app, fx.call("echo", n=2), CALL))["host"] != before


async def test_a_cancelled_call_retires_its_container(make_sandbox: Make, warm_app: Target) -> None:
    sandbox = make_sandbox()
    await sandbox.run(warm_app, fx.call("echo", n=1), CALL)
    task = asyncio.create_task(sandbox.run(warm_app, fx.call("spin"), CALL))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sandbox.pool.stats()["live"] == 0
    assert not (await sandbox.run(warm_app, fx.call("echo", n=2), CALL)).warm


async def test_warm_false_runs_one_container_per_call(make_sandbox: Make, warm_app: Target) -> None:
    sandbox = make_sandbox()
    cold = Target(warm_app.kind, warm_app.ref, warm=False)
    results = [await sandbox.run(cold, fx.call("echo", n=i), CALL) for i in range(2)]
    assert [r.warm for r in results] == [False, False]
    assert all("remove_ms" in r.timings for r in results)
    assert fx.step_data(results[0])["host"] != fx.step_data(results[1])["host"]
    assert fx.pooled(sandbox) == []


async def test_prewarmed_containers_serve_the_first_call_warm(make_sandbox: Make, warm_app: Target) -> None:
    sandbox = make_sandbox()
    assert await sandbox.prewarm(warm_app, CALL, count=2) == 2
    assert sandbox.pool.stats()["idle"] == 2
    result = await sandbox.run(warm_app, fx.call("echo", n=1), CALL)
    assert result.warm and b"warm app loaded" in result.stderr


async def test_ten_concurrent_calls_on_one_key_never_share_a_container(
    make_sandbox: Make, warm_app: Target
) -> None:
    sandbox = make_sandbox(pool=PoolConfig(max_per_key=6))
    for round_ in range(2):
        results = await asyncio.gather(*(
            sandbox.run(warm_app, fx.call("echo", n=i, sleep=0.3), CALL) for i in range(10)
        ))
        answers = [fx.step_data(r) for r in results]
        assert [a["n"] for a in answers] == list(range(10))  # each got its own answer
        # All ten overlap in time, so ten containers: six pooled, four one-shot.
        assert len({a["host"] for a in answers}) == 10
        assert sum("remove_ms" in r.timings for r in results) == 4
        assert sum(r.warm for r in results) == (0 if round_ == 0 else 6)
        for r in results:
            assert r.stderr.count(b"echo ") == 1, r.stderr
    assert sandbox.pool.stats()["live"] == 6


async def test_an_idle_container_that_died_is_replaced_before_a_call_reaches_it(
    make_sandbox: Make, warm_app: Target
) -> None:
    sandbox = make_sandbox()
    before = fx.step_data(await sandbox.run(warm_app, fx.call("echo", n=1), CALL))["host"]
    assert fx.docker("kill", before).returncode == 0
    await asyncio.sleep(0.3)  # the attach stream closes when the container dies
    result = await sandbox.run(warm_app, fx.call("echo", n=2), CALL)
    assert not result.warm and fx.step_data(result)["host"] != before
