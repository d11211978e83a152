"""Under runc a warm container's stdio travels over a unix socket bound read-only into
it, not through dockerd's attach stream; the guest can neither reach that socket nor
write there, and where the socket cannot be used the container attaches instead."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sandboxes import _docker_stdio
from sandboxes._docker_api import EngineClient
from sandboxes._docker_oneshot import container_config
from sandboxes._docker_pool import POOL_LABEL
from sandboxes._docker_stdio import HostSocket, socket_base
from sandboxes._docker_warm import WarmContainer
from sandboxes.base import Limits, SandboxError, Target
from sandboxes.docker import DockerSandbox, PoolConfig
from tests.sandboxes import docker_fixtures as fx

docker_engine, make_sandbox, warm_app = fx.docker_engine, fx.make_sandbox, fx.warm_app

pytestmark = pytest.mark.docker

CALL = Limits(timeout_s=20)
Make = Callable[..., DockerSandbox]

PROBE_APP = '''
import os
import socket

import sluice

app = sluice.App("socket-probe")


def _try(action):
    try:
        return ["ok", action()]
    except OSError as exc:
        return [type(exc).__name__, exc.errno]


def _connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect("/run/sluice/s")
    return "connected"


def _write():
    with open("/run/sluice/planted", "w") as f:
        f.write("x")
    return "written"


@app.function(id="cut-logs")
def cut_logs(ctx):
    def cut():
        print("about to cut", flush=True)
        socket.socket(fileno=os.dup(2)).shutdown(socket.SHUT_RDWR)  # the logs' socket, shared with pid 1
        return "cut"

    return ctx.step.run("cut", cut)


@app.function(id="pass-fds")
def pass_fds(ctx):
    def send():
        logs = socket.socket(fileno=os.dup(2))
        fds = [os.open("/etc/hostname", os.O_RDONLY) for _ in range(8)]
        socket.send_fds(logs, [b"fds-sent. "], fds)
        return len(fds)

    return ctx.step.run("send", send)


@app.function(id="probe")
def probe(ctx):
    print("probe logs")
    return ctx.step.run("probe", lambda: {
        "listing": _try(lambda: os.listdir("/run/sluice")),
        "connect": _try(_connect),
        "write": _try(_write),
    })
'''


@pytest.fixture(scope="module")
def probe_app(tmp_path_factory: pytest.TempPathFactory) -> Target:
    app_dir = tmp_path_factory.mktemp("socket-probe")
    (app_dir / "app.py").write_text(PROBE_APP)
    return Target("python", str(app_dir))


def _containers(sandbox: DockerSandbox) -> list[WarmContainer]:
    return list(sandbox.pool._mine)


def _mounts(cid: str) -> list[dict[str, object]]:
    out = fx.docker("inspect", "--format", "{{json .Mounts}}", cid)
    mounts: list[dict[str, object]] = json.loads(out.stdout)
    return mounts


async def test_runc_calls_travel_over_a_read_only_socket_the_guest_cannot_use(
    make_sandbox: Make, probe_app: Target
) -> None:
    sandbox = make_sandbox()
    first = await sandbox.run(probe_app, fx.call("probe"), CALL)
    second = await sandbox.run(probe_app, fx.call("probe"), CALL)
    assert second.warm and b"probe logs" in first.stderr and second.stderr == b"probe logs\n"
    (container,) = _containers(sandbox)
    assert container.transport == "socket"
    seen = fx.step_data(second)
    # The socket was removed once the serving program connected; the mount is read-only.
    assert seen["listing"] == ["ok", []]
    assert seen["connect"][0] == "FileNotFoundError"
    assert seen["write"] == ["OSError", 30]  # EROFS
    (mount,) = _mounts(container.cid)
    assert mount["Destination"] == "/run/sluice" and mount["RW"] is False
    base = Path(str(mount["Source"])).parent
    assert stat.S_IMODE(base.stat().st_mode) == 0o700  # no other host user reaches the sockets
    await sandbox.close()
    assert not base.exists()


async def test_the_attach_stream_serves_when_the_socket_is_turned_off(
    make_sandbox: Make, warm_app: Target
) -> None:
    sandbox = make_sandbox(pool=PoolConfig(unix_socket=False))
    await sandbox.run(warm_app, fx.call("echo", n=1), CALL)
    second = await sandbox.run(warm_app, fx.call("echo", n=2), CALL)
    assert second.warm and fx.step_data(second)["n"] == 2 and second.stderr == b"echo 2\n"
    (container,) = _containers(sandbox)
    assert container.transport == "attach" and _mounts(container.cid) == []


async def test_an_engine_whose_mounts_do_not_carry_the_socket_falls_back_to_attach(
    make_sandbox: Make, warm_app: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-socket-here"
    empty.mkdir(mode=0o755)
    real = HostSocket.configure

    def elsewhere(self: HostSocket, config: dict[str, object]) -> dict[str, object]:
        made = real(self, config)
        made["HostConfig"]["Binds"] = [f"{empty}:/run/sluice:ro"]  # type: ignore[index]
        return made

    monkeypatch.setattr(HostSocket, "configure", elsewhere)
    sandbox = make_sandbox()
    first = await sandbox.run(warm_app, fx.call("echo", n=1), CALL)
    second = await sandbox.run(warm_app, fx.call("echo", n=2), CALL)
    assert fx.step_data(first)["n"] == 1 and second.warm and fx.step_data(second)["n"] == 2
    assert sandbox.pool.unix_socket is False
    assert [c.transport for c in _containers(sandbox)] == ["attach"]


@pytest.fixture
async def engine(docker_engine: None) -> AsyncIterator[EngineClient]:
    api = EngineClient()
    yield api
    await api.close()


async def _start_raw(api: EngineClient, command: list[str], base: Path, label: str) -> WarmContainer:
    """A warm container of the base image running ``command``, its socket under ``base``."""
    config = container_config(fx.BASE_IMAGE, {}, Limits(), runtime="runc", labels={POOL_LABEL: label})
    return await WarmContainer.start(api, f"sluice-test-{uuid.uuid4().hex[:12]}", config, command, 128, 10,
                                     socket_base=base)


async def test_a_container_that_exits_before_connecting_reports_its_exit_and_output(engine: EngineClient) -> None:
    base = socket_base()
    command = ["python3", "-c", "import sys; sys.stderr.write('gone early\\n'); sys.exit(5)"]
    container = await _start_raw(engine, command, base, f"test-{uuid.uuid4().hex[:8]}")
    try:
        assert container.transport == "attach"
        outcome = await container.call(fx.call("echo", n=1), CALL)
        assert not outcome.reusable and outcome.result.exit_code == 5
        assert b"gone early" in outcome.result.stderr and "5" in str(outcome.result.error)
    finally:
        await container.destroy()
    assert list(base.iterdir()) == []  # its socket directory went with it
    base.rmdir()


async def test_a_container_that_never_connects_is_removed_with_a_clear_error(
    engine: EngineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_docker_stdio, "CONNECT_S", 1.0)
    base = socket_base()
    label = f"test-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SandboxError, match="did not connect to its socket within 1 s"):
        await _start_raw(engine, ["python3", "-c", "import time; time.sleep(60)"], base, label)
    assert fx.containers_labelled(f"{POOL_LABEL}={label}") == []
    assert list(base.iterdir()) == []
    base.rmdir()


def test_socket_directories_of_processes_that_are_gone_are_swept(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = tmp_path / f"sluice-io-{gone.stdout.strip()}-abcd1234"
    (stale / "c0ffee").mkdir(parents=True)
    mine = socket_base()
    alive = tmp_path / "sluice-io-1-keepme00"  # pid 1 is alive
    alive.mkdir()
    again = socket_base()
    assert not stale.exists() and mine.exists() and again.exists() and alive.exists()
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700 and mine.name.startswith(f"sluice-io-{os.getpid()}-")


async def test_a_guest_that_shuts_the_shared_log_socket_loses_only_its_container(
    make_sandbox: Make, probe_app: Target
) -> None:
    sandbox = make_sandbox()
    await sandbox.run(probe_app, fx.call("probe"), CALL)
    (first,) = _containers(sandbox)
    cut = await sandbox.run(probe_app, fx.call("cut-logs"), CALL)
    # The answer stands (it came on the protocol socket); the container, whose pid 1
    # can no longer end a call on the logs, is retired and the next call gets a new one.
    assert fx.step_data(cut) == "cut" and b"about to cut" in cut.stderr
    after = await sandbox.run(probe_app, fx.call("probe"), CALL)
    assert fx.step_data(after)["listing"] == ["ok", []] and b"probe logs" in after.stderr
    assert first not in _containers(sandbox)


async def test_file_descriptors_a_guest_sends_on_its_log_socket_never_reach_the_host(
    make_sandbox: Make, probe_app: Target
) -> None:
    sandbox = make_sandbox()
    await sandbox.run(probe_app, fx.call("probe"), CALL)
    before = len(os.listdir("/proc/self/fd"))
    sent = await sandbox.run(probe_app, fx.call("pass-fds"), CALL)
    assert fx.step_data(sent) == 8 and b"fds-sent" in sent.stderr
    assert len(os.listdir("/proc/self/fd")) <= before  # the kernel dropped them: no recvmsg here
    again = await sandbox.run(probe_app, fx.call("probe"), CALL)
    assert again.warm and fx.step_data(again)["connect"][0] == "FileNotFoundError"
