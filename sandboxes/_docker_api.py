"""A small asyncio client for the Docker Engine API, over its unix socket.

Only what a one-shot run needs, without leaving the event loop: JSON calls
(create, start, wait, inspect, kill, remove, list) through aiohttp, and ``attach``
with stdin as a hijacked connection (HTTP ``Upgrade: tcp``), which aiohttp cannot do,
so it is written by hand on an asyncio stream.

Paths are pinned to API version 1.41 (Docker 20.10, Debian 12's engine) so a newer
daemon answers with the same shapes. Only ``unix://`` hosts are supported: the
product never talks to an engine over the network.

Failure modes: :class:`EngineError` (with the HTTP status and the daemon's message)
for any non-2xx answer; :class:`EngineUnreachable` when the socket cannot be opened.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

API_VERSION = "1.41"
DEFAULT_HOST = "unix:///var/run/docker.sock"

#: Longest header block the daemon may send before the raw stream (bytes).
_MAX_HEADER_BYTES = 16 * 1024
#: Request bodies this large go to aiohttp as a stream, not raw bytes (bytes).
_LARGE_BODY_BYTES = 1024 * 1024
_FRAME_HEAD = struct.Struct(">BxxxI")


class EngineError(Exception):
    """The daemon answered with an error; ``status`` is the HTTP status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"docker engine: {message} (HTTP {status})")
        self.status = status
        self.message = message


class EngineUnreachable(EngineError):
    """No daemon answers on the socket."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


def socket_path(docker_host: str | None = None) -> str:
    """The unix socket path for ``docker_host`` (default: ``$DOCKER_HOST`` or the standard one)."""
    host = docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    if not host.startswith("unix://"):
        raise EngineUnreachable(f"only unix:// docker hosts are supported, got {host!r}")
    return host.removeprefix("unix://")


@dataclass
class Attachment:
    """A hijacked attach connection: write stdin, then read multiplexed output frames."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send_stdin(self, data: bytes) -> None:
        """Write ``data`` and half-close, so the guest sees end of input.

        A guest that exits without reading its input resets the connection; that is
        the guest's business, not an error here.
        """
        try:
            self.writer.write(data)
            await self.writer.drain()
            if self.writer.can_write_eof():
                self.writer.write_eof()
        except (ConnectionError, OSError):
            pass

    async def frames(self) -> AsyncGenerator[tuple[int, bytes], None]:
        """Yield ``(stream, chunk)`` until the daemon closes the stream (1 = stdout, 2 = stderr)."""
        while True:
            try:
                head = await self.reader.readexactly(_FRAME_HEAD.size)
            except asyncio.IncompleteReadError:
                return
            stream, size = _FRAME_HEAD.unpack(head)
            try:
                chunk = await self.reader.readexactly(size)
            except asyncio.IncompleteReadError as exc:
                chunk = exc.partial
                yield stream, chunk
                return
            yield stream, chunk

    def close(self) -> None:
        self.writer.close()


class EngineClient:
    """Async Docker Engine API calls on one unix socket. Create and close inside a loop."""

    def __init__(self, docker_host: str | None = None) -> None:
        self.socket = socket_path(docker_host)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise EngineUnreachable("this engine client is closed")
        if self._session is None:
            connector = aiohttp.UnixConnector(path=self.socket, limit=64)
            # No overall timeout here: callers bound each run themselves.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, connect=10)
            )
        return self._session

    async def close(self) -> None:
        """Close the connection pool; later calls raise :class:`EngineUnreachable`. Idempotent."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> Any:
        """One JSON call; returns the decoded body (``None`` when empty). Raises :class:`EngineError`."""
        url = f"http://docker/v{API_VERSION}{path}"
        data: Any = None
        headers = {}
        if body is not None:
            raw_body = json.dumps(body).encode()
            # aiohttp warns (ResourceWarning) when handed raw bytes over 1 MiB; a stream it reads in pieces.
            data = raw_body if len(raw_body) < _LARGE_BODY_BYTES else io.BytesIO(raw_body)
            headers["Content-Type"] = "application/json"
        try:
            async with self._http().request(method, url, params=params, data=data, headers=headers) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise EngineError(resp.status, _message(raw))
        except aiohttp.ClientConnectionError as exc:
            raise EngineUnreachable(
                f"cannot reach the Docker engine on {self.socket} ({exc}); start one with "
                "scripts/docker-engine.sh"
            ) from None
        return json.loads(raw) if raw else None

    async def ping(self) -> None:
        await self.call("GET", "/_ping")

    async def info(self) -> dict[str, Any]:
        out: dict[str, Any] = await self.call("GET", "/info")
        return out

    async def inspect_image(self, name: str) -> dict[str, Any] | None:
        """The image's description, or ``None`` if there is no such image."""
        try:
            out: dict[str, Any] = await self.call("GET", f"/images/{quote(name, safe='/:@')}/json")
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise
        return out

    async def create(self, name: str, config: dict[str, Any]) -> str:
        """Create a container; returns its id."""
        out = await self.call("POST", "/containers/create", params={"name": name}, body=config)
        return str(out["Id"])

    async def start(self, cid: str) -> None:
        await self.call("POST", f"/containers/{cid}/start")

    async def wait(self, cid: str) -> int:
        """Block until the container stops; its exit code."""
        out = await self.call("POST", f"/containers/{cid}/wait")
        return int(out["StatusCode"])

    async def inspect(self, cid: str) -> dict[str, Any]:
        out: dict[str, Any] = await self.call("GET", f"/containers/{cid}/json")
        return out

    async def kill(self, cid: str) -> None:
        """SIGKILL the container; a container that already stopped or is gone is fine."""
        try:
            await self.call("POST", f"/containers/{cid}/kill")
        except EngineError as exc:
            if exc.status not in (404, 409):
                raise

    async def remove(self, cid: str) -> None:
        """Force-remove the container and its anonymous volumes; already gone is fine."""
        try:
            await self.call("DELETE", f"/containers/{cid}", params={"force": "1", "v": "1"})
        except EngineError as exc:
            # 409: removal already in progress (a concurrent cleanup).
            if exc.status not in (404, 409):
                raise

    async def list_containers(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """All containers (running or not) carrying every one of ``labels``."""
        filters = json.dumps({"label": [f"{k}={v}" for k, v in labels.items()]})
        out: list[dict[str, Any]] = await self.call(
            "GET", "/containers/json", params={"all": "1", "filters": filters}
        )
        return out

    async def attach(self, cid: str, *, stdin: bool = True) -> Attachment:
        """Attach stdin (unless ``stdin`` is false), stdout and stderr of a created (not
        yet started) container.

        Attaching before start is what guarantees no early output is lost.
        """
        if self._closed:
            raise EngineUnreachable("this engine client is closed")
        try:
            reader, writer = await asyncio.open_unix_connection(self.socket)
        except OSError as exc:
            raise EngineUnreachable(f"cannot reach the Docker engine on {self.socket} ({exc})") from None
        path = f"/v{API_VERSION}/containers/{quote(cid)}/attach?stream=1&stdin={int(stdin)}&stdout=1&stderr=1"
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
            "Upgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise EngineError(0, f"attach to {cid[:12]} got no answer ({exc})") from None
        if len(head) > _MAX_HEADER_BYTES:
            writer.close()
            raise EngineError(0, "attach answer headers too long")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status not in (101, 200):
            writer.close()
            raise EngineError(status, f"attach to {cid[:12]} refused: {status_line}")
        return Attachment(reader, writer)


def _message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["message"])
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace").strip()[:500] or "no message"
