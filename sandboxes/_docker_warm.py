"""One warm container: a trusted parent that forks a clean child for every call.

The container runs ``_docker_serve`` (the guest-side program, passed as ``python3 -c``
source) with its stdio on a unix socket bound read-only into it (runc) or on the
Engine's attach stream (runsc, or where the socket cannot be used): see
``_docker_stdio``; the bytes on either are the same. Its pid 1 imports the SDK and the
app once, then forks one child per call; after the child, it kills every other process, empties ``/tmp``,
``/dev/shm`` and ``/dev/mqueue`` and removes SysV IPC objects before it forwards the
answer. So every call starts from the state right after the app's import: nothing a
call left (files, processes, threads, a patched SDK) reaches the next one.

Wire format (host side of ``_docker_serve``): at start the host writes one frame of
one-time tokens (:data:`TOKEN_BYTES` each, one per call the container may serve). Per
call: the request frame on stdin; on stdout the response frame, then an *end frame*
holding the call's token; on stderr the call's logs, then the token in hex between
``END_PREFIX`` and ``END_SUFFIX``. No child ever holds a token, so a guest cannot end
its call early, forge an answer for a later call, or push its logs into another call's.

Logs: stdout and stderr travel apart (two goroutines of dockerd, or two sockets), so a
line printed just before the response can arrive after it; the stderr marker says the
call's logs are all in. What the app printed at import belongs to the first call.

A call fails (and the pool retires the container) on: no answer within
``limits.timeout_s`` (killed), a response frame over ``max_stdout_bytes``, more than
``max_stderr_bytes`` of logs, stdout that is not exactly the answer and its end frame,
or the container exiting (the child crashed, was OOM-killed or sent a bad request: the
parent exits with the child's code; or leftovers could not be cleaned). A call that
answered but whose end frame did not follow within ``MARKER_GRACE_S`` keeps its answer;
the container is retired.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandboxes._docker_api import EngineClient, EngineError
from sandboxes._docker_oneshot import exit_error, oom_killed
from sandboxes._docker_serve import END_PREFIX, END_SUFFIX, OOM_LINE, SOCKET_FLAG, TOKEN_BYTES
from sandboxes._docker_stdio import GUEST_DIR, SOCKET_NAME, AttachStdio, HostSocket, SocketStdio, Stdio
from sandboxes.base import Limits, MiB, Result, SandboxError
from sluice.protocol import frame

#: The guest-side program (see ``_docker_serve``); argv after it: the shim's arguments.
SERVE_SOURCE = Path(__file__).with_name("_docker_serve.py").read_text()

#: Stderr a container may write between calls before it is retired (bytes).
IDLE_STDERR_BYTES = 1 * MiB
#: How long to wait for the end frame and the end of the logs once the answer is in (s).
MARKER_GRACE_S = 2.0
#: Longest wait for an exited container's exit code (s).
EXIT_WAIT_S = 10.0
#: Most calls one container serves (one token each: 1 MiB of tokens).
MAX_TOKENS = 65536

_LEN = struct.Struct(">I")
_END_FRAME = 4 + TOKEN_BYTES


def serve_command(config: dict[str, Any]) -> list[str] | None:
    """The warm command for an image whose entrypoint is the SDK shim, else ``None``.

    ``config`` is the image's ``Config`` (from an image inspect). Only images that run
    ``python3 -m sluice.shim ...`` (the guest image and everything built FROM it) can be
    warm; the tokens are sent per container by :meth:`WarmContainer.start`.
    """
    entry = list(config.get("Entrypoint") or [])
    args = entry[3:] + list(config.get("Cmd") or [])
    if len(entry) < 3 or entry[0] not in ("python3", "python") or entry[1:3] != ["-m", "sluice.shim"]:
        return None
    if "--serve" in args or any(a.startswith("--socket") for a in args):
        return None
    return [entry[0], "-c", SERVE_SOURCE, *args]


@dataclass
class _Exchange:
    """The state of one request/response on a container."""

    stdout_cap: int
    stderr_cap: int
    stderr: bytearray
    done: asyncio.Future[None]
    token: bytes  # this call's end frame body
    marker: bytes  # this call's end of logs on stderr
    head: bytearray = field(default_factory=bytearray)
    size: int | None = None
    body: bytearray = field(default_factory=bytearray)
    response: bytes | None = None
    end: bytearray = field(default_factory=bytearray)
    ended: bool = False
    marker_seen: bool = False
    failure: str | None = None
    grace: asyncio.TimerHandle | None = None

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class Outcome:
    """What a warm call produced, and whether the container may serve again."""

    result: Result
    reusable: bool


class WarmContainer:
    """A started container running ``_docker_serve``; :meth:`call` one request at a time."""

    def __init__(self, api: EngineClient, cid: str, stdio: Stdio, tokens: bytes,
                 memory_mb: int, runtime: str, host_socket: HostSocket | None = None) -> None:
        self.api = api
        self.runtime = runtime
        self.cid = cid
        self.memory_mb = memory_mb
        self.calls = 0
        #: Calls this container can serve (one token each).
        self.capacity = len(tokens) // TOKEN_BYTES
        self.last_used = time.monotonic()
        #: Why this container must not serve again (``None`` while it may).
        self.broken: str | None = None
        self._stdio = stdio
        self._host_socket = host_socket
        self._tokens = tokens
        self._pending = bytearray()  # stderr that arrived outside a call
        self._ex: _Exchange | None = None
        self._eof = False
        stdio.start(self._on_stdout, self._on_stderr, self._on_end)

    @classmethod
    async def start(cls, api: EngineClient, name: str, config: dict[str, Any],
                    command: list[str], memory_mb: int, calls: int,
                    socket_base: Path | None = None) -> WarmContainer:
        """Create, attach and start a container running ``command``; send it tokens for
        ``calls`` calls (at most :data:`MAX_TOKENS`). Under runc with ``socket_base``
        (a private directory), its stdio travels over a unix socket in a directory made
        there (see ``_docker_stdio``), else over the attach stream.

        Raises :class:`SandboxError` when the engine refuses; nothing is left behind.
        """
        tokens = secrets.token_bytes(TOKEN_BYTES * max(1, min(calls, MAX_TOKENS)))
        runtime = str(config.get("HostConfig", {}).get("Runtime", "runc"))
        host = None
        if socket_base is not None and runtime == "runc":
            host = HostSocket.open(socket_base, secrets.token_hex(6))
        if host is not None:
            config = host.configure(config)
            command = [*command[:3], f"{SOCKET_FLAG}={GUEST_DIR}/{SOCKET_NAME}", *command[3:]]
        config = {**config, "Entrypoint": command[:3], "Cmd": command[3:]}
        try:
            try:
                cid = await api.create(name, config)
            except EngineError as exc:
                raise SandboxError(f"cannot create a container from {config['Image']}: {exc.message}") from None
            try:
                attachment = await api.attach(cid, stdin=host is None)
                stdio: Stdio | None = None
                try:
                    await api.start(cid)
                    stdio = AttachStdio(attachment) if host is None else await host.hand_over(attachment)
                    stdio.write(frame(tokens))
                except BaseException:
                    attachment.close()
                    if stdio is not None:
                        await stdio.aclose()
                    raise
            except BaseException as exc:
                await asyncio.shield(_remove_quietly(api, cid))
                if isinstance(exc, EngineError):
                    raise SandboxError(f"cannot start container: {exc.message}") from None
                raise
        except BaseException:
            if host is not None:
                host.remove()
            raise
        return cls(api, cid, stdio, tokens, memory_mb, runtime, host)

    @property
    def transport(self) -> str:
        """How its stdio travels: ``"socket"`` or ``"attach"`` (see ``_docker_stdio``)."""
        return "socket" if isinstance(self._stdio, SocketStdio) else "attach"

    @property
    def healthy(self) -> bool:
        """Still running and fit to serve: its stdio is open, nothing broke, and
        a token is left."""
        return not self._eof and self.broken is None and self.calls < self.capacity

    # --- one call -------------------------------------------------------------

    async def call(self, request: bytes, limits: Limits) -> Outcome:
        """Send ``request``, wait for its response, end frame and logs; never raises for
        guest trouble.

        ``Outcome.reusable`` is false when the container must be retired (the result
        says why). ``exit_code`` is 0 for an answer, the container's code when it
        exited, ``None`` when the host stopped it (timeout, output cap).
        """
        if self._ex is not None:
            raise RuntimeError("a warm container serves one request at a time")
        if self.calls >= self.capacity:
            raise RuntimeError("this warm container has served all its calls")
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        token = self._tokens[self.calls * TOKEN_BYTES:(self.calls + 1) * TOKEN_BYTES]
        pending, self._pending = self._pending, bytearray()
        ex = _Exchange(limits.max_stdout_bytes, limits.max_stderr_bytes, pending, loop.create_future(),
                       token, END_PREFIX + token.hex().encode() + END_SUFFIX)
        self._ex = ex
        self.calls += 1
        timed_out = False
        try:
            self._on_stderr(b"")  # the marker cannot be in what came before the call; checks the cap
            async with asyncio.timeout(limits.timeout_s):
                try:
                    self._stdio.write(frame(request))
                    await self._stdio.drain()
                except (ConnectionError, OSError):
                    pass  # the guest is gone; the reader sees the end of the stream
                if self._eof:
                    ex.finish()
                await ex.done
        except TimeoutError:
            timed_out = True
        finally:
            self._ex = None
            if ex.grace is not None:
                ex.grace.cancel()
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
            error = await self._exit_error(exit_code, limits, bytes(ex.stderr))
            self.broken = "exited"
        elif not (ex.ended and ex.marker_seen):
            self.broken = "no end of call"  # the answer stands; its logs may be short
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

    async def _exit_error(self, exit_code: int | None, limits: Limits, stderr: bytes) -> str:
        if exit_code is None:
            return "the warm container stopped answering"
        if exit_code != 0:
            with contextlib.suppress(EngineError):
                state = (await self.api.inspect(self.cid)).get("State", {})
                # OOMKilled is set when the OOM killer took pid 1; the serving parent says
                # so itself when it took the call's process instead.
                oom_line = exit_code == 137 and OOM_LINE.encode() in stderr
                if oom_killed(state, exit_code, self.runtime) or oom_line:
                    return f"out of memory (limit {limits.memory_mb} MiB)"
            return exit_error(exit_code, self.runtime, limits, stderr)
        return "exited with code 0 without a response"

    # --- the container's output ------------------------------------------------

    def _on_end(self) -> None:
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
        start = max(0, len(buf) - len(ex.marker) + 1)
        buf += chunk
        at = buf.find(ex.marker, start)
        if at >= 0:
            self._pending += buf[at + len(ex.marker):]
            del buf[at:]
            ex.marker_seen = True
        if len(buf) > ex.stderr_cap:
            del buf[ex.stderr_cap:]
            ex.failure = ex.failure or f"stderr exceeded {ex.stderr_cap} bytes"
            ex.finish()
        elif ex.marker_seen and ex.ended:
            ex.finish()

    def _on_stdout(self, chunk: bytes) -> None:
        ex = self._ex
        if ex is None or ex.ended:
            # Protocol bytes nobody asked for: this container's framing can't be trusted.
            self._bad_stdout(ex, "the guest wrote past its response")
            return
        data = memoryview(chunk)
        if ex.response is None:
            data = self._read_response(ex, data)
            if ex.response is None or ex.failure is not None:
                return
            # The answer is in: its end frame and logs follow at once, or the call ends anyway.
            ex.grace = asyncio.get_running_loop().call_later(MARKER_GRACE_S, ex.finish)
        if not data:
            return
        need = _END_FRAME - len(ex.end)
        ex.end += data[:need]
        data = data[need:]
        if len(ex.end) < _END_FRAME:
            return
        if bytes(ex.end) != _LEN.pack(TOKEN_BYTES) + ex.token:
            self._bad_stdout(ex, "the guest wrote past its response")  # not the parent's end frame
            return
        ex.ended = True
        if data:
            self._bad_stdout(ex, "the guest wrote past its response")
        elif ex.marker_seen:
            ex.finish()

    def _read_response(self, ex: _Exchange, data: memoryview) -> memoryview:
        """Feed ``data`` to the response frame; what is left after it."""
        if ex.size is None:
            need = 4 - len(ex.head)
            ex.head += data[:need]
            data = data[need:]
            if len(ex.head) < 4:
                return data
            (ex.size,) = _LEN.unpack(ex.head)
        need = ex.size - len(ex.body)
        ex.body += data[:need]
        data = data[need:]
        if len(ex.body) > ex.stdout_cap or (ex.size > ex.stdout_cap and len(ex.body) == ex.stdout_cap):
            del ex.body[ex.stdout_cap:]
            ex.failure = f"stdout exceeded {ex.stdout_cap} bytes"  # no need to read the rest
            ex.finish()
            return data
        if len(ex.body) == ex.size:
            ex.response = bytes(ex.body)
        return data

    def _bad_stdout(self, ex: _Exchange | None, failure: str) -> None:
        self.broken = "stdout outside a response"
        if ex is not None:
            ex.failure = ex.failure or failure
            ex.finish()

    # --- the end ----------------------------------------------------------------

    async def destroy(self) -> None:
        """Kill and remove the container; quiet if it is already gone."""
        self.broken = self.broken or "retired"
        await self._stdio.aclose()
        try:
            await self.api.remove(self.cid)
        finally:
            if self._host_socket is not None:
                self._host_socket.remove()


async def _remove_quietly(api: EngineClient, cid: str) -> None:
    with contextlib.suppress(EngineError):
        await api.remove(cid)
