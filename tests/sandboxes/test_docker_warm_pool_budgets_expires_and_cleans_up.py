"""A warm pool stays within its memory budget, lets idle containers go, removes every
container on close, and runs gVisor targets warm too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sandboxes.base import Limits, SandboxError, Target
from sandboxes.docker import DockerSandbox, PoolConfig
from tests.sandboxes import docker_fixtures as fx

docker_engine, make_sandbox, warm_app = fx.docker_engine, fx.make_sandbox, fx.warm_app

pytestmark = pytest.mark.docker

SMALL = Limits(timeout_s=20, memory_mb=64)
Make = Callable[..., DockerSandbox]


def variant(app: Target, name: str, **kw: object) -> Target:
    """The same app as another pool key (a different environment)."""
    return Target(app.kind, app.ref, env={"VARIANT": name}, **kw)  # type: ignore[arg-type]


async def test_idle_containers_are_removed_after_idle_s(make_sandbox: Make, warm_app: Target) -> None:
    sandbox = make_sandbox(pool=PoolConfig(idle_s=0.3, reap_interval_s=0.1))
    await sandbox.run(warm_app, fx.call("echo", n=1), SMALL)
    assert sandbox.pool.stats()["idle"] == 1
    for _ in range(40):  # bounded: 4 s
        if not fx.pooled(sandbox):
            break
        await asyncio.sleep(0.1)
    assert fx.pooled(sandbox) == [] and sandbox.pool.stats()["live"] == 0


async def test_the_memory_budget_evicts_the_least_recently_used_idle_container(
    make_sandbox: Make, warm_app: Target
) -> None:
    sandbox = make_sandbox(pool=PoolConfig(max_total_memory_mb=3 * 64))
    hosts = {}
    for name in ("a", "b", "c", "a"):  # "a" used again: "b" is now the least recent
        hosts[name] = fx.step_data(await sandbox.run(variant(warm_app, name), fx.call("echo"), SMALL))["host"]
    assert sandbox.pool.stats() == {"live": 3, "idle": 3, "busy": 0, "reserved_mb": 192}
    await sandbox.run(variant(warm_app, "d"), fx.call("echo"), SMALL)
    assert sandbox.pool.stats()["reserved_mb"] == 192
    await asyncio.sleep(0.5)  # removal runs in the background
    alive = " ".join(fx.pooled(sandbox))
    assert hosts["b"] not in alive and hosts["a"] in alive and hosts["c"] in alive
    assert (await sandbox.run(variant(warm_app, "a"), fx.call("echo"), SMALL)).warm


async def test_with_the_budget_spent_on_busy_containers_a_call_runs_one_shot(
    make_sandbox: Make, warm_app: Target
) -> None:
    sandbox = make_sandbox(pool=PoolConfig(max_total_memory_mb=2 * 64))
    results = await asyncio.gather(*(
        sandbox.run(variant(warm_app, name), fx.call("echo", sleep=0.5), SMALL) for name in "abc"
    ))
    assert all(r.ok for r in results)
    assert sum("remove_ms" in r.timings for r in results) == 1  # the one that found no room
    assert sandbox.pool.stats()["live"] == 2


async def test_close_removes_every_warm_container_even_a_busy_one(make_sandbox: Make, warm_app: Target) -> None:
    sandbox = make_sandbox()
    await sandbox.prewarm(warm_app, SMALL, count=2)
    busy = asyncio.create_task(sandbox.run(variant(warm_app, "x"), fx.call("spin"), SMALL))
    for _ in range(50):  # bounded: 5 s for the busy one to start
        if len(fx.pooled(sandbox)) == 3:
            break
        await asyncio.sleep(0.1)
    assert len(fx.pooled(sandbox)) == 3
    await sandbox.close()
    assert fx.pooled(sandbox) == [] and fx.containers_labelled(f"sluice.sandbox={sandbox.id}") == []
    with pytest.raises(SandboxError, match="closed"):
        await busy


async def test_a_target_asking_for_runsc_runs_warm_under_gvisor(make_sandbox: Make, warm_app: Target) -> None:
    if '"runsc"' not in fx.docker("info", "--format", "{{json .Runtimes}}").stdout:
        pytest.skip("runsc is not registered: scripts/docker-engine.sh --gvisor")
    sandbox = make_sandbox()  # runc by default; the target picks gVisor
    gvisor = Target(warm_app.kind, warm_app.ref, isolation="runsc")
    first = await sandbox.run(gvisor, fx.call("echo", n=1), SMALL)
    second = await sandbox.run(gvisor, fx.call("echo", n=2), SMALL)
    assert (first.warm, second.warm) == (False, True)
    assert fx.step_data(first)["host"] == fx.step_data(second)["host"]
    (cid,) = fx.pooled(sandbox)
    assert fx.inspect_json(cid)["HostConfig"]["Runtime"] == "runsc"  # type: ignore[index]
    # The same app under runc is another pool key.
    assert not (await sandbox.run(warm_app, fx.call("echo", n=3), SMALL)).warm
    assert len(fx.pooled(sandbox)) == 2


async def test_an_unknown_isolation_is_refused_by_name(make_sandbox: Make, warm_app: Target) -> None:
    sandbox = make_sandbox()
    with pytest.raises(SandboxError, match="kata"):
        await sandbox.run(Target(warm_app.kind, warm_app.ref, isolation="kata"), fx.call("echo"), SMALL)
