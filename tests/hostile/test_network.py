"""No network: a guest reaches no loopback TCP or UDP listener and no abstract unix socket
the test owns on the host, no engine socket, and cannot open raw or packet sockets.

The listeners are the test's own, on 127.0.0.1 and in this host's network namespace:
each must see nothing from the guest.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandboxes.base import Result, Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

network_app = fx.app_fixture("network", '''
import socket


def tcp(host, port):
    with socket.create_connection((host, port), timeout=1) as s:
        s.sendall(b"hello from the guest")
        return "connected"


def udp(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(b"hello from the guest", ("127.0.0.1", port))
        return s.recvfrom(100)  # the test's listener answers every datagram


def unix(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        s.connect(path)
        return "connected"


@app.function(id="reach-out")
def reach_out(ctx):
    port, abstract = ctx.event.data["port"], ctx.event.data["abstract"]
    return ctx.step.run("reach", lambda: probe({
        "tcp_127.0.0.1": lambda: tcp("127.0.0.1", port),
        "tcp_localhost": lambda: tcp("localhost", port),
        "udp_127.0.0.1": lambda: udp(port),
        "abstract_unix_socket": lambda: unix("\\0" + abstract),
        "docker_socket": lambda: unix("/var/run/docker.sock"),
        "containerd_socket": lambda: unix("/run/containerd/containerd.sock"),
        "raw_socket": lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
        "packet_socket": lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW),
    }))
''')

_SOCK = '(import "wasi_snapshot_preview1" "{name}" (func ${name} (param {params}) (result i32)))'
#: Tries ``sock_accept`` on fds 0-15 and ``sock_send`` on fd 1; exits 13 if all were refused, 0 if not.
SOCKETS = f"""(module
  {_SOCK.format(name="sock_accept", params="i32 i32 i32")}
  {_SOCK.format(name="sock_send", params="i32 i32 i32 i32 i32")}
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $fd i32)
    (loop $next
      (if (i32.eqz (call $sock_accept (local.get $fd) (i32.const 0) (i32.const 64)))
        (then (call $proc_exit (i32.const 0))))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $fd) (i32.const 16))))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 5))
    (if (i32.eqz (call $sock_send (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 64)))
      (then (call $proc_exit (i32.const 0))))
    (call $proc_exit (i32.const 13))))
"""


@dataclass
class Listeners:
    """The test's own listeners; each records every peer that reached it."""

    port: int
    abstract: str
    seen: list[str]


@pytest.fixture
async def listeners() -> AsyncIterator[Listeners]:
    seen: list[str] = []

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(f"tcp from {writer.get_extra_info('peername')}")
        writer.close()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            seen.append(f"udp from {addr}")
            self.transport.sendto(b"answer", addr)  # type: ignore[attr-defined]

    tcp = await asyncio.start_server(on_tcp, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", port))
    abstract = f"sluice-hostile-{secrets.token_hex(8)}"

    async def on_unix(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append("abstract unix socket")
        writer.close()

    unix_server = await asyncio.start_unix_server(on_unix, path="\0" + abstract)
    try:
        yield Listeners(port, abstract, seen)
    finally:
        for server in (tcp, unix_server):
            server.close()
            await server.wait_closed()
        udp.close()


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_a_guest_reaches_no_listener_of_the_host(
    guest: fx.Guest, network_app: Target, listeners: Listeners
) -> None:
    request = call("reach-out", {"port": listeners.port, "abstract": listeners.abstract})
    fx.refused(guest, await fx.attack(guest, network_app, request))
    await asyncio.sleep(0.3)  # anything in flight lands
    assert listeners.seen == [], f"the guest reached the host: {listeners.seen}"


@pytest.mark.parametrize("guest", fx.MODULE_KINDS, indirect=True)
async def test_a_module_has_no_socket_to_use(guest: fx.Guest, tmp_path: Path) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "sockets", SOCKETS), b"")
    assert isinstance(result, Result)
    assert guest.note(fx.failure(result)) == "exited with code 13"  # every socket call refused


def test_the_listeners_answer_a_host_client(listeners: Listeners) -> None:
    """The control: the same attempts from this process do reach them."""
    with socket.create_connection(("127.0.0.1", listeners.port), timeout=2):
        pass
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect("\0" + listeners.abstract)
