"""Fixtures for the Docker sandbox tests; test modules import them by name.

Not a conftest.py, because the WASM sandbox tests share this directory.

* ``docker_engine`` (session): skips without an engine or the local base image on a
  laptop, fails under ``CI=true``.
* ``probe_image`` (session): ``tests/sandboxes/docker_probe`` built once per content
  hash on the local base: a stand-in guest that takes commands on stdin.
* ``warm_app`` (session): a Python app for the warm-pool tests; ``call`` and
  ``step_data`` make its requests and read its answers.
* ``docker_sandbox``: a fresh :class:`DockerSandbox` per test, closed after it; the
  test fails if any one-shot container is left before close, or any container at all after.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sandboxes.base import Result, Target
from sandboxes.docker import DockerSandbox
from sluice import protocol

PROBE_DIR = Path(__file__).parent / "docker_probe"
BASE_IMAGE = "sluice/base:bookworm"


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so this must work)")
    pytest.skip(reason)


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; the completed process (never raises on a non-zero exit)."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def containers_labelled(label: str) -> list[str]:
    """Ids of every container (any state) carrying ``label`` (``key`` or ``key=value``)."""
    out = docker("ps", "-aq", "--filter", f"label={label}")
    return out.stdout.split()


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine and the local base image, or skip (fail under CI)."""
    try:
        info = docker("info", "--format", "{{json .ServerVersion}}", timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _missing(f"no docker client or engine: {exc}")
        return
    if info.returncode != 0:
        _missing("no Docker engine answers `docker info`: run scripts/docker-engine.sh")
    if docker("image", "inspect", BASE_IMAGE).returncode != 0:
        _missing(f"no {BASE_IMAGE} image: run images/base/bootstrap.sh")


@pytest.fixture(scope="session")
def probe_image(docker_engine: None) -> str:
    """The probe guest image, tagged by the hash of its files; built only when missing."""
    digest = hashlib.sha256()
    for path in sorted(PROBE_DIR.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    tag = f"sluice-test/probe:{digest.hexdigest()[:12]}"
    if docker("image", "inspect", tag).returncode != 0:
        built = subprocess.run(
            ["docker", "build", "-q", "--network", "none", "--label", "sluice-test=1",
             "--build-arg", f"BASE={BASE_IMAGE}", "-t", tag, str(PROBE_DIR)],
            capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
        assert built.returncode == 0, f"building the probe image failed:\n{built.stderr}"
    return tag


@pytest.fixture
async def docker_sandbox(docker_engine: None) -> AsyncIterator[DockerSandbox]:
    """A sandbox per test; afterwards, none of its containers may remain."""
    sandbox = DockerSandbox()
    yield sandbox
    left_before_close = containers_labelled(f"sluice.sandbox={sandbox.id}")
    await sandbox.close()
    assert left_before_close == [], f"containers left behind after the test: {left_before_close}"
    assert containers_labelled(f"sluice.sandbox={sandbox.id}") == []
    # Warm containers live on purpose until close(); after it, none may remain.
    assert containers_labelled(f"sluice.pool={sandbox.id}") == []


def inspect_json(ref: str) -> dict[str, object]:
    out = docker("inspect", ref)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)[0]
    return result


WARM_APP = '''
import os
import socket
import sys
import time

import sluice

app = sluice.App("warm")
print("warm app loaded")
CALLS = []  # module state survives between calls of one warm container


@app.function(id="echo")
def echo(ctx):
    data = ctx.event.data
    CALLS.append(data.get("n"))
    print("echo", data.get("n"))
    time.sleep(data.get("sleep", 0))
    return ctx.step.run("echo", lambda: {
        "n": data.get("n"), "host": socket.gethostname(), "calls": len(CALLS),
    })


@app.function(id="spin")
def spin(ctx):
    while True:
        pass


@app.function(id="crash")
def crash(ctx):
    def leave():
        print("leaving with 7", file=sys.stderr, flush=True)
        os._exit(7)

    return ctx.step.run("crash", leave)


@app.function(id="big")
def big(ctx):
    return ctx.step.run("big", lambda: "x" * ctx.event.data["bytes"])
'''


@pytest.fixture(scope="session")
def warm_app(tmp_path_factory: pytest.TempPathFactory) -> Target:
    """A Python app for warm-pool tests: echo (n, sleep → n, host, calls), spin, crash, big."""
    app_dir = tmp_path_factory.mktemp("warm-app")
    (app_dir / "app.py").write_text(WARM_APP)
    return Target("python", str(app_dir))


def call(function: str, **data: object) -> bytes:
    """A protocol call request for ``function`` with event data ``data``."""
    return protocol.pack({
        "v": 1, "kind": "call", "function": function, "event": {"name": "test/warm", "data": data},
        "steps": {}, "run": {"id": "run-1", "attempt": 0}, "target": None,
    })


def step_data(result: Result) -> Any:
    """The data of the step op in a successful result of a function that returns its one
    step's output: the response is exactly that step op and the ``done`` op with the same
    data (the last step's call also returns the result)."""
    assert result.ok, (result.error, result.stderr[-800:])
    step, done = protocol.decode_response(result.stdout)["ops"]
    assert step["op"] == "step" and done == {"op": "done", "data": step["data"]}, (step, done)
    return step["data"]


def pooled(sandbox: DockerSandbox) -> list[str]:
    """Ids of the warm containers of ``sandbox`` the engine knows (any state)."""
    return containers_labelled(f"sluice.pool={sandbox.id}")


@pytest.fixture
async def make_sandbox(docker_engine: None) -> AsyncIterator[Callable[..., DockerSandbox]]:
    """``make_sandbox(**options)``: a DockerSandbox closed after the test; none of its
    containers, one-shot or warm, may remain after close."""
    made: list[DockerSandbox] = []

    def make(**options: Any) -> DockerSandbox:
        made.append(DockerSandbox(**options))
        return made[-1]

    yield make
    for sandbox in made:
        await sandbox.close()
        assert containers_labelled(f"sluice.sandbox={sandbox.id}") == []
        assert pooled(sandbox) == []
