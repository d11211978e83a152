"""An app that opted in to reuse (``Target.reuse``) has its warm container answer its
calls itself: module state carries over from call to call, still one call at a time
under each call's own deadline, and a container that fails a call is replaced. Targets
that did not opt in keep a clean forked process per call, in containers of their own."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from sandboxes.base import Limits, Target
from sandboxes.docker import DockerSandbox
from tests.sandboxes import docker_fixtures as fx

docker_engine, make_sandbox, warm_app = fx.docker_engine, fx.make_sandbox, fx.warm_app

pytestmark = pytest.mark.docker

CALL = Limits(timeout_s=30)


async def test_a_reuse_target_keeps_module_state_and_others_start_clean(
    make_sandbox: Callable[..., DockerSandbox], warm_app: Target
) -> None:
    sandbox = make_sandbox()
    reuse = replace(warm_app, reuse=True)
    kept = [fx.step_data(await sandbox.run(reuse, fx.call("echo", n=i), CALL)) for i in range(3)]
    assert [k["calls"] for k in kept] == [1, 2, 3]  # CALLS grew: one process answered them all
    assert len({k["host"] for k in kept}) == 1
    clean = [fx.step_data(await sandbox.run(warm_app, fx.call("echo", n=i), CALL)) for i in range(2)]
    assert [c["calls"] for c in clean] == [1, 1]  # a forked child per call, as before
    assert clean[0]["host"] != kept[0]["host"]  # never the reuse target's container
    started = time.monotonic()
    spun = await sandbox.run(reuse, fx.call("spin"), Limits(timeout_s=2))
    assert spun.timed_out and time.monotonic() - started < 10
    after = fx.step_data(await sandbox.run(reuse, fx.call("echo", n=9), CALL))
    assert after["calls"] == 1 and after["host"] != kept[0]["host"]  # the one that timed out is gone
