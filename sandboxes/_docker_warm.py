"""One warm container: a hardened guest that answers framed requests until retired.

The container runs the SDK shim's framed loop (``--serve``) with stdin/stdout on the
Engine's attach stream, so nothing is mounted and runc and runsc behave the same.
Requests go out as frames on stdin; the response is the next frame on stdout.

Logs: stderr arrives on the same attach stream, but Docker copies stdout and stderr
in separate goroutines, so a line printed just before the response can arrive after
it. To give each call exactly its own stderr, the guest runs a small wrapper around
the shim (:data:`SERVE_WRAPPER`) that, after each response, flushes stderr and writes
a per-container random marker to fd 2. Everything on stderr up to the marker belongs
to the call; what the app printed at import belongs to the first call. A guest that
forges the marker only scrambles its own logs.

A call fails (and the pool retires the container) on: no answer within
``limits.timeout_s`` (killed), a response frame over ``max_stdout_bytes``, more than
``max_stderr_bytes`` of logs, stdout bytes outside a response, or the container
exiting (crash, out of memory, a bad request making the shim quit with code 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from sandboxes._docker_api import Attachment, EngineClient, EngineError
from sandboxes.base import Limits, MiB, Result, SandboxError
from sluice.protocol import frame

#: The guest-side loop: the shim's own framed server, plus an end-of-call marker on fd 2.
#: argv: marker, then the shim's arguments. Relies on sluice.shim's serve helpers.
SERVE_WRAPPER = """\
import os, sys
from sluice import shim
marker = sys.argv[1].encode()
opts = shim._parse_args(sys.argv[2:])
proto_in, proto_out = shim._claim_stdio()
loaded = shim._load(opts)
def flush():
    proto_out.flush()
    for s in (sys.stderr, sys.__stderr__):
        try:
            s.flush()
        except Exception:
            pass
    os.write(2, marker)
sys.exit(0 if shim._serve(proto_in, proto_out.write, flush, loaded) else 2)
"""

#: Stderr a container may write between calls before it is retired (bytes).
IDLE_STDERR_BYTES = 1 * MiB
#: How long to wait for the end-of-call marker once the response is in (s).
MARKER_GRACE_S = 1.0
#: Longest wait for an exited container's exit code (s).
EXIT_WAIT_S = 10.0

_LEN = struct.Struct(">I")


def serve_command(config: dict[str, Any]) -> list[str] | None:
    """The warm command for an image whose entrypoint is the SDK shim, else ``None``.

    ``config`` is the image's ``Config`` (from an image inspect). Only images that run
    ``python3 -m sluice.shim ...`` (the guest image and everything built FROM it) can be
    warm; the marker is appended per container by :meth:`WarmContainer.start`.
    """
    entry = list(config.get("Entrypoint") or [])
    args = entry[3:] + list(config.get("Cmd") or [])
    if len(entry) < 3 or entry[0] not in ("python3", "python") or entry[1:3] != ["-m", "sluice.shim"]:
        return None
    if "--serve" in args or any(a.startswith("--socket") for a in args):
        return None
    return [entry[0], "-c", SERVE_WRAPPER, *args]


@dataclass
class _Exchange:
    """The state of one request/response on a container."""

    stdout_cap: int
    stderr_cap: int
    stderr: bytearray
    done: asyncio.Future[None]
    head: bytearray = field(default_factory=bytearray)
    size: int | None = None
    body: bytearray = field(default_factory=bytearray)
    response: bytes | None = None
    marker_seen: bool = False
    failure: str | None = None

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class Outcome:
    """What a warm call produced, and whether the container may serve again."""

    result: Result
    reusable: bool


class WarmContainer:
    """A started container in ``--serve`` mode; :meth:`call` one request at a time."""

    def __init__(self, api: EngineClient, cid: str, attachment: Attachment, marker: bytes,
                 memory_mb: int) -> None:
        self.api = api
        self.cid = cid
        self.memory_mb = memory_mb
        self.calls = 0
        self.last_used = time.monotonic()
        #: Why this container must not serve again (``None`` while it may).
        self.broken: str | None = None
        self._attachment = attachment
        self._marker = marker
        self._pending = bytearray()  # stderr that arrived outside a call
        self._ex: _Exchange | None = None
        self._eof = False
        self._reader = asyncio.create_task(self._read(), name=f"sluice-warm-{cid[:12]}")

    @classmethod
    async def start(cls, api: EngineClient, name: str, config: dict[str, Any],
                    command: list[str], memory_mb: int) -> WarmContainer:
        """Create, attach and start a container running ``command`` plus a fresh marker.

        Raises :class:`SandboxError` when the engine refuses; nothing is left behind.
        """
        marker = f"\x1esluice-end-{secrets.token_hex(12)}\x1e"  # no NUL: it travels in argv
        config = {**config, "Entrypoint": command[:3], "Cmd": [marker, *command[3:]]}
        try:
            cid = await api.create(name, config)
        except EngineError as exc:
            raise SandboxError(f"cannot create a container from {config['Image']}: {exc.message}") from None
        try:
            attachment = await api.attach(cid)
            try:
                await api.start(cid)
            except BaseException:
                attachment.close()
                raise
        except BaseException as exc:
            await asyncio.shield(_remove_quietly(api, cid))
            if isinstance(exc, EngineError):
                raise SandboxError(f"cannot start container: {exc.message}") from None
            raise
        return cls(api, cid, attachment, marker.encode(), memory_mb)

    @property
    def healthy(self) -> bool:
        """Still running and fit to serve: the attach stream is open and nothing broke."""
        return not self._eof and self.broken is None

    # --- one call -------------------------------------------------------------

    async def call(self, request: bytes, limits: Limits) -> Outcome:
        """Send ``request``, wait for its response and logs; never raises for guest trouble.

        ``Outcome.reusable`` is false when the container must be retired (the result
        says why). ``exit_code`` is 0 for an answer, the container's code when it
        exited, ``None`` when the host stopped it (timeout, output cap).
        """
        if self._ex is not None:
            raise RuntimeError("a warm container serves one request at a time")
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        pending, self._pending = self._pending, bytearray()
        ex = _Exchange(limits.max_stdout_bytes, limits.max_stderr_bytes, pending, loop.create_future())
        self._ex = ex
        self.calls += 1
        timed_out = False
        grace: asyncio.TimerHandle | None = None
        try:
            async with asyncio.timeout(limits.timeout_s):
                try:
                    self._attachment.writer.write(frame(request))
                    await self._attachment.writer.drain()
                except (ConnectionError, OSError):
                    pass  # the guest is gone; the reader sees the end of the stream
                if self._eof:
                    ex.finish()
                await ex.done
                if ex.response is not None and not ex.marker_seen and ex.failure is None and not self._eof:
                    # The answer is in but its logs are not all there: wait briefly.
                    ex.done = loop.create_future()
                    grace = loop.call_later(MARKER_GRACE_S, ex.finish)
                    await ex.done
        except TimeoutError:
            timed_out = True
        finally:
            self._ex = None
            if grace is not None:
                grace.cancel()
        return await self._outcome(ex, limits, started, timed_out)

    async def _outcome(self, ex: _Exchange, limits: Limits, started: float, timed_out: bool) -> Outcome:
        stderr = bytes(ex.stderr[: limits.max_stderr_bytes])
        error: str | None = None
        exit_code: int | None = 0
        stdout = ex.response or b""
        if timed_out:
            error, exit_code, stdout = f"timed out after {limits.timeout_s:g} s", None, b""
            self.broken = "timed out"
        elif ex.failure is not None:
            error, exit_code = ex.failure, None
            stdout = bytes(ex.body[: limits.max_stdout_bytes]) if ex.response is None else stdout
            self.broken = ex.failure
        elif ex.response is None:  # the container exited during the call
            exit_code = await self._exit_code()
            stdout = b""
            error = await self._exit_error(exit_code, limits)
            self.broken = "exited"
        elif not ex.marker_seen:
            self.broken = "no end-of-call marker"  # the answer stands; its logs may be short
        return Outcome(
            Result(
                ok=error is None, stdout=stdout, stderr=stderr, exit_code=exit_code, error=error,
                duration_ms=(time.monotonic() - started) * 1000, timed_out=timed_out,
            ),
            reusable=self.healthy,
        )

    async def _exit_code(self) -> int | None:
        try:
            async with asyncio.timeout(EXIT_WAIT_S):
                return await self.api.wait(self.cid)
        except (TimeoutError, EngineError):
            return None

    async def _exit_error(self, exit_code: int | None, limits: Limits) -> str:
        if exit_code is None:
            return "the warm container stopped answering"
        if exit_code != 0:
            with contextlib.suppress(EngineError):
                state = (await self.api.inspect(self.cid)).get("State", {})
                if state.get("OOMKilled"):
                    return f"out of memory (limit {limits.memory_mb} MiB)"
            return f"exited with code {exit_code}"
        return "exited with code 0 without a response"

    # --- the attach stream ------------------------------------------------------

    async def _read(self) -> None:
        try:
            async with contextlib.aclosing(self._attachment.frames()) as chunks:
                async for stream, chunk in chunks:
                    if stream == 1:
                        self._on_stdout(chunk)
                    elif stream == 2:
                        self._on_stderr(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            self._eof = True
            if self._ex is not None:
                self._ex.finish()

    def _on_stderr(self, chunk: bytes) -> None:
        ex = self._ex
        if ex is None or ex.marker_seen:
            if len(self._pending) + len(chunk) > IDLE_STDERR_BYTES:
                self.broken = "stderr flood between calls"
                return
            self._pending += chunk
            return
        buf = ex.stderr
        start = max(0, len(buf) - len(self._marker) + 1)
        buf += chunk
        at = buf.find(self._marker, start)
        if at >= 0:
            self._pending += buf[at + len(self._marker):]
            del buf[at:]
            ex.marker_seen = True
        if len(buf) > ex.stderr_cap:
            del buf[ex.stderr_cap:]
            ex.failure = ex.failure or f"stderr exceeded {ex.stderr_cap} bytes"
            ex.finish()
        elif ex.marker_seen and ex.response is not None:
            ex.finish()

    def _on_stdout(self, chunk: bytes) -> None:
        ex = self._ex
        if ex is None or ex.response is not None:
            # Protocol bytes nobody asked for: this guest's framing can't be trusted.
            self.broken = "stdout outside a response"
            if ex is not None:
                ex.failure = ex.failure or "the guest wrote past its response"
                ex.finish()
            return
        data = memoryview(chunk)
        while data:
            if ex.size is None:
                need = 4 - len(ex.head)
                ex.head += data[:need]
                data = data[need:]
                if len(ex.head) < 4:
                    return
                (ex.size,) = _LEN.unpack(ex.head)
            need = ex.size - len(ex.body)
            ex.body += data[:need]
            data = data[need:]
            if len(ex.body) > ex.stdout_cap:
                ex.failure = f"stdout exceeded {ex.stdout_cap} bytes"
                ex.finish()
                return
            if ex.size > ex.stdout_cap and len(ex.body) == ex.stdout_cap:
                ex.failure = f"stdout exceeded {ex.stdout_cap} bytes"  # no need to read the rest
                ex.finish()
                return
            if len(ex.body) < ex.size:
                return
            ex.response = bytes(ex.body)
            if data:
                self.broken = "stdout outside a response"
                ex.failure = "the guest wrote past its response"
            # If the marker is still in flight, call() decides how long to wait for it.
            ex.finish()
            return

    # --- the end ----------------------------------------------------------------

    async def destroy(self) -> None:
        """Kill and remove the container; quiet if it is already gone."""
        self.broken = self.broken or "retired"
        self._attachment.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.api.remove(self.cid)


async def _remove_quietly(api: EngineClient, cid: str) -> None:
    with contextlib.suppress(EngineError):
        await api.remove(cid)
