"""A Python app directory runs under the real SDK shim in the Docker sandbox."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandboxes.base import Limits, Target
from sandboxes.docker import DockerSandbox
from sluice import protocol
from tests.sandboxes import docker_fixtures as fx

# Fixtures shared with the other Docker test modules (see docker_fixtures.py).
docker_engine, docker_sandbox = fx.docker_engine, fx.docker_sandbox

pytestmark = pytest.mark.docker

APP = '''
import sluice

app = sluice.App("greeter")

def shout(name):
    print("shouting at", name)
    return name.upper()

@app.function(id="greet", trigger=sluice.event("user/signup"))
def greet(ctx):
    loud = ctx.step.run("shout", shout, ctx.event.data["name"])
    return {"greeting": "HELLO " + loud}
'''

EVENT = {"name": "user/signup", "data": {"name": "ada"}, "id": "e1", "ts": 0}


def call(steps: dict[str, object]) -> bytes:
    return protocol.pack({
        "v": 1, "kind": "call", "function": "greet", "event": EVENT, "events": [EVENT],
        "steps": steps, "run": {"id": "run-1", "attempt": 0}, "target": None,
    })


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


async def test_introspect_describes_the_apps_functions(docker_sandbox: DockerSandbox, app_dir: Path) -> None:
    result = await docker_sandbox.run(
        Target("python", str(app_dir)), protocol.pack({"v": 1, "kind": "introspect"}), Limits(timeout_s=30)
    )
    assert result.ok, (result.error, result.stderr)
    described = protocol.decode_introspection(result.stdout)
    assert described["app"] == "greeter"
    assert [fn["id"] for fn in described["functions"]] == ["greet"]


async def test_a_call_runs_one_step_and_finishes_and_a_replay_finishes_from_the_memoized_output(
    docker_sandbox: DockerSandbox, app_dir: Path
) -> None:
    target = Target("python", str(app_dir))
    first = await docker_sandbox.run(target, call({}), Limits(timeout_s=30))
    assert first.ok, (first.error, first.stderr)
    # The function returns right after its one step: the same call carries both ops.
    op, finished = protocol.decode_response(first.stdout)["ops"]
    assert op["op"] == "step" and op["data"] == "ADA"
    done = {"op": "done", "data": {"greeting": "HELLO ADA"}}
    assert finished == done
    assert b"shouting at ada" in first.stderr  # the user's print is a log, not protocol

    second = await docker_sandbox.run(target, call({op["id"]: {"data": op["data"]}}), Limits(timeout_s=30))
    assert second.ok, (second.error, second.stderr)
    assert protocol.decode_response(second.stdout)["ops"] == [done]
    assert b"shouting at ada" not in second.stderr  # the memoized step did not run again


async def test_an_unchanged_app_is_not_rebuilt_and_a_changed_one_is(
    docker_sandbox: DockerSandbox, app_dir: Path
) -> None:
    target = Target("python", str(app_dir))
    await docker_sandbox.prepare(target)
    first_tag = docker_sandbox.image_of(target)
    started = time.monotonic()
    await docker_sandbox.prepare(target)
    assert time.monotonic() - started < 1.0
    assert docker_sandbox.image_of(target) == first_tag

    (app_dir / "app.py").write_text(APP.replace("HELLO", "HI"))
    await docker_sandbox.prepare(target)
    second_tag = docker_sandbox.image_of(target)
    assert second_tag is not None and second_tag != first_tag
    fx.docker("rmi", second_tag)


async def test_an_unparsable_request_is_reported_as_exit_code_2(
    docker_sandbox: DockerSandbox, app_dir: Path
) -> None:
    target = Target("python", str(app_dir))
    result = await docker_sandbox.run(target, b"\xc1 not msgpack", Limits(timeout_s=30))
    assert not result.ok
    assert result.exit_code == 2 and result.error == "exited with code 2"
    assert result.stderr
