"""How a warm container's stdin, stdout and stderr reach the host: the Engine's attach
stream, or two connections to a unix socket bound into the container.

**Attach** (:class:`AttachStdio`): every byte crosses dockerd and containerd-shim. It
needs nothing mounted and works the same under runc and runsc, but in a burst those
two processes spend about a third of a millisecond of CPU per call.

**Socket** (:class:`SocketStdio`, runc only): before the container is created the host
makes a directory holding one listening unix socket (:class:`HostSocket`), and the
container mounts that directory **read-only** at :data:`GUEST_DIR` (DESIGN §3.3: "a
unix socket bound into the sandbox"). The serving program connects to it twice before
it loads the app: the first connection becomes its stdin and stdout (the protocol),
the second its stderr (the logs). The host accepts exactly two connections, then
closes the listener and removes the socket file, so no user code (which runs only
after the app is loaded) can connect to the host; the mount is read-only, so nothing
can be written there either. Bytes then go guest → host kernel socket, with no daemon
in between; the wire format on them is the attach stream's (``_docker_warm``).

Why not under runsc: gVisor lets a sandbox connect to a host unix socket only with
``--host-uds=open`` (or ``all``) among the runtime's arguments, which opens every
host socket mounted into any sandbox of that runtime. Sluice does not ask users to
widen that, so runsc keeps the attach stream.

A container that exits before it connects (a broken image, no ``python3``) is read
from the attach stream, which is open until the hand-over: its output and exit reach
the caller as they would without the socket. One that says it cannot reach the socket
(:data:`NO_SOCKET_LINE`: an engine whose bind mounts do not carry unix sockets, such as
one in a VM) raises :class:`SocketUnavailable`; the pool then attaches from then on.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandboxes._docker_api import Attachment
from sandboxes._docker_serve import NO_SOCKET_LINE
from sandboxes.base import MiB, SandboxError

#: Where the socket's directory is mounted in the container (read-only).
GUEST_DIR = "/run/sluice"
#: The socket's file name in that directory.
SOCKET_NAME = "s"
#: Longest wait for a started container to connect (s); it has not loaded the app yet.
CONNECT_S = 30.0
#: Output a container may write before it connects; more is dropped (bytes).
EARLY_BYTES = 1 * MiB
#: Read size on the socket connections (bytes).
_CHUNK = 256 * 1024



class SocketUnavailable(SandboxError):
    """The container could not connect to its socket; its stdio must be attached."""


OnData = Callable[[bytes], None]
OnEnd = Callable[[], None]


class Stdio(abc.ABC):
    """A warm container's stdio: :meth:`write` and :meth:`drain` its stdin; what it
    writes reaches ``on_stdout`` / ``on_stderr`` given to :meth:`start`, then ``on_end``
    once, when the container has closed both (it exited)."""

    @abc.abstractmethod
    def start(self, on_stdout: OnData, on_stderr: OnData, on_end: OnEnd) -> None:
        ...

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        ...

    @abc.abstractmethod
    async def drain(self) -> None:
        ...

    @abc.abstractmethod
    async def aclose(self) -> None:
        ...


class AttachStdio(Stdio):
    """The Engine's attach stream; ``early`` is output read before :meth:`start`
    (replayed first), ``ended`` that the stream closed while it was read."""

    def __init__(self, attachment: Attachment, early: list[tuple[int, bytes]] | None = None,
                 ended: bool = False) -> None:
        self._attachment = attachment
        self._early = early or []
        self._ended = ended
        self._task: asyncio.Task[None] | None = None

    def start(self, on_stdout: OnData, on_stderr: OnData, on_end: OnEnd) -> None:
        self._task = asyncio.create_task(self._read(on_stdout, on_stderr, on_end), name="sluice-warm-attach")

    async def _read(self, on_stdout: OnData, on_stderr: OnData, on_end: OnEnd) -> None:
        try:
            for stream, chunk in self._early:
                (on_stdout if stream == 1 else on_stderr)(chunk)
            self._early = []
            if self._ended:
                return
            async with contextlib.aclosing(self._attachment.frames()) as chunks:
                async for stream, chunk in chunks:
                    if stream == 1:
                        on_stdout(chunk)
                    elif stream == 2:
                        on_stderr(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            on_end()

    def write(self, data: bytes) -> None:
        self._attachment.writer.write(data)

    async def drain(self) -> None:
        await self._attachment.writer.drain()

    async def aclose(self) -> None:
        self._attachment.close()
        await _cancel(self._task)


class SocketStdio(Stdio):
    """Two accepted connections: the protocol (stdin and stdout) and the logs (stderr)."""

    def __init__(self, proto: socket.socket, logs: socket.socket) -> None:
        self._socks = (proto, logs)
        self._readers: list[asyncio.StreamReader] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._open = 2

    @classmethod
    async def of(cls, proto: socket.socket, logs: socket.socket) -> SocketStdio:
        stdio = cls(proto, logs)
        try:
            for sock in stdio._socks:
                reader, writer = await asyncio.open_unix_connection(sock=sock, limit=_CHUNK)
                stdio._readers.append(reader)
                stdio._writers.append(writer)
        except BaseException:
            await stdio.aclose()
            raise
        return stdio

    def start(self, on_stdout: OnData, on_stderr: OnData, on_end: OnEnd) -> None:
        for reader, sink in zip(self._readers, (on_stdout, on_stderr), strict=True):
            self._tasks.append(asyncio.create_task(self._read(reader, sink, on_end), name="sluice-warm-socket"))

    async def _read(self, reader: asyncio.StreamReader, sink: OnData, on_end: OnEnd) -> None:
        try:
            while chunk := await reader.read(_CHUNK):
                sink(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            # The container ended once both are closed: its pid 1 exiting takes every
            # process of it, so the other follows at once, and no late log is lost.
            self._open -= 1
            if self._open == 0:
                on_end()

    def write(self, data: bytes) -> None:
        self._writers[0].write(data)  # the protocol's connection

    async def drain(self) -> None:
        await self._writers[0].drain()

    async def aclose(self) -> None:
        for writer in self._writers:
            writer.close()
        if not self._writers:
            for sock in self._socks:
                sock.close()
        for task in self._tasks:
            await _cancel(task)


class HostSocket:
    """The listening socket of one container in its own directory ``base/name``.

    :meth:`configure` mounts the directory into a create body; :meth:`hand_over` waits
    for the two connections; :meth:`remove` deletes the directory (after the container).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / SOCKET_NAME
        self._listener: socket.socket | None = None

    @classmethod
    def open(cls, base: Path, name: str) -> HostSocket | None:
        """A listening socket in ``base/name``, or ``None`` where one cannot be made here
        (a path too long for a unix socket, a full disk): the caller then attaches."""
        host = cls(base / name)
        try:
            host.directory.mkdir(mode=0o755)
            os.chmod(host.directory, 0o755)  # the guest's user must reach the socket (umask aside)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(str(host.path))
                os.chmod(host.path, 0o666)  # connecting takes write permission on the socket
                listener.listen(2)
                listener.setblocking(False)
            except BaseException:
                listener.close()
                raise
        except OSError:
            host.remove()
            return None
        host._listener = listener
        return host

    def configure(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` with the directory mounted read-only and no stdin attached."""
        host_config = {**config.get("HostConfig", {}), "Binds": [f"{self.directory}:{GUEST_DIR}:ro"]}
        return {**config, "HostConfig": host_config, "AttachStdin": False, "OpenStdin": False,
                "StdinOnce": False}

    async def hand_over(self, attachment: Attachment) -> Stdio:
        """Wait for the started container's two connections (at most :data:`CONNECT_S`).

        Returns a :class:`SocketStdio` (the attach stream is closed), or, when the
        container's output ended first (it exited), an :class:`AttachStdio` holding what
        it wrote. Raises :class:`SocketUnavailable` when it said it cannot connect, and
        :class:`SandboxError` when neither happens in time. The
        listener is closed and its file removed in every case.
        """
        assert self._listener is not None
        early: list[tuple[int, bytes]] = []
        watch = asyncio.create_task(_collect(attachment, early), name="sluice-warm-early")
        accept = asyncio.create_task(_accept_two(self._listener), name="sluice-warm-accept")
        try:
            done, _ = await asyncio.wait({watch, accept}, timeout=CONNECT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._close_listener()
            if not accept.done():
                await _cancel(accept)
        if accept in done and accept.exception() is None:
            await _cancel(watch)
            attachment.close()
            return await SocketStdio.of(*accept.result())
        if watch in done:
            said = b"".join(chunk for stream, chunk in early if stream == 2)
            if NO_SOCKET_LINE.encode() in said:
                attachment.close()
                raise SocketUnavailable(said.decode(errors="replace").strip())
            return AttachStdio(attachment, early, ended=True)
        await _cancel(watch)
        raise SandboxError(f"the warm container did not connect to its socket within {CONNECT_S:g} s")

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def remove(self) -> None:
        self._close_listener()
        shutil.rmtree(self.directory, ignore_errors=True)


def socket_base() -> Path:
    """A new private directory (mode 0700) for one pool's container sockets, named for
    this process; those of this user's processes that are gone (killed before their
    pool's ``close()``) are removed first."""
    top = Path(tempfile.gettempdir())
    for old in top.glob("sluice-io-*-*"):
        pid = old.name.split("-")[2]
        with contextlib.suppress(OSError, ValueError):
            if old.stat().st_uid == os.getuid() and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"sluice-io-{os.getpid()}-", dir=top))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _accept_two(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """The first connection (the guest's protocol), then the second (its logs): a unix
    socket's backlog keeps the order the guest connected in."""
    loop = asyncio.get_running_loop()
    proto, _ = await loop.sock_accept(listener)
    try:
        logs, _ = await loop.sock_accept(listener)
    except BaseException:
        proto.close()
        raise
    return proto, logs


async def _collect(attachment: Attachment, early: list[tuple[int, bytes]]) -> None:
    """Keep what the container writes before it connects (up to :data:`EARLY_BYTES`)."""
    kept = 0
    with contextlib.suppress(ConnectionError, OSError):
        async with contextlib.aclosing(attachment.frames()) as chunks:
            async for stream, chunk in chunks:
                if kept < EARLY_BYTES:
                    early.append((stream, chunk[: EARLY_BYTES - kept]))
                    kept += len(early[-1][1])


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
