"""More executor processes for one node (``--executors N``).

Everything a node does runs on one event loop under one GIL, so past about one core a
busy node waits on itself while the machine's other cores idle (measured on 2 cores:
a WASM burst used 1.3 of them; with one more executor process, 2.0 and a third more
runs a second). ``--executors N`` starts N more processes beside the node, each a
``sluice node --roles executor`` on the same NATS and history store that loads the
same apps. They take jobs from the same durable consumers as any executor of a fleet,
so nothing about them is new to trust: a job is held by one executor at a time, and a
process that dies leaves its jobs to be redelivered (DESIGN §4).

Each says it is ready (its node started, its apps loaded) with a line on its stdout
(:func:`announce_ready`); the node's ``/readyz`` answers 503 until every one has said
so since it was last started. Logs go to the node's stderr, each line carrying
``"executor": N``.

The node supervises them: one that exits is started again after a back-off (1 s,
doubling up to 30 s, back to 1 s once one has stayed up a minute). Each runs in its
own session, so a terminal's Ctrl-C reaches only the node, which then stops them
(SIGTERM, SIGKILL after :data:`STOP_GRACE_S`); and each is SIGTERMed by Linux if the
node dies without stopping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from bus.server import die_with_parent

log = structlog.get_logger("sluice.executors")

RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
#: A process up this long is healthy again: its next restart waits RESTART_MIN_S.
HEALTHY_S = 60.0
#: How long a stopping process may finish the steps it is running (an executor naks
#: the jobs it holds but has not started) before it is killed.
STOP_GRACE_S = 20.0


#: What an executor process writes on its stdout once it is ready.
READY_LINE = b"sluice-executor-ready\n"


def announce_ready() -> None:
    """In an executor process: tell the node this process is ready (see :data:`READY_LINE`)."""
    sys.stdout.buffer.write(READY_LINE)
    sys.stdout.buffer.flush()


def executor_command(index: int, *, nats: str, history: str, apps: Sequence[Path], sandbox: str,
                     reload: bool) -> list[str]:
    """The command line of extra executor process ``index`` (from 1)."""
    cmd = [sys.executable, "-m", "runtime.cli", "node", "--nats", nats, "--history", history,
           "--roles", "executor", "--sandbox", sandbox, "--worker-index", str(index),
           "--reload" if reload else "--no-reload",
           "--executors", "0"]  # explicit: SLUICE_EXECUTORS in the environment is the node's
    for app in apps:
        cmd += ["--app", str(app)]
    return cmd


class ExecutorProcesses:
    """Keeps one process running per command in ``commands`` until :meth:`stop`."""

    def __init__(self, commands: Sequence[Sequence[str]]) -> None:
        self._commands = [list(c) for c in commands]
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._ready: set[int] = set()  # indexes that said they are ready since their last start
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        #: Starts made, restarts included (for logs and tests).
        self.starts = 0

    @property
    def pids(self) -> list[int]:
        """The process ids running now."""
        return [p.pid for p in self._procs.values() if p.returncode is None]

    @property
    def ready(self) -> bool:
        """Every process is running and has said it is ready since it was last started."""
        return len(self._ready) == len(self._commands)

    def start(self) -> None:
        """Start every process (in the background: they load their apps on their own)."""
        for index, command in enumerate(self._commands, start=1):
            self._tasks.append(asyncio.create_task(self._keep(index, command), name=f"executor-{index}"))

    async def _keep(self, index: int, command: list[str]) -> None:
        delay = RESTART_MIN_S
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    start_new_session=True, preexec_fn=die_with_parent)
            except OSError as exc:
                log.error("cannot start an executor process", executor=index, error=str(exc))
            else:
                self.starts += 1
                self._procs[index] = proc
                log.info("executor process started", executor=index, pid=proc.pid)
                if self._stopping.is_set():  # stop() ran while it was being started
                    _signal(proc, signal.SIGTERM)
                await self._watch_stdout(index, proc)
                code = await proc.wait()
                self._ready.discard(index)
                if self._stopping.is_set():
                    return
                log.warning("executor process exited; starting it again", executor=index, pid=proc.pid,
                            code=code, in_s=delay)
            if time.monotonic() - began >= HEALTHY_S:
                delay = RESTART_MIN_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, RESTART_MAX_S)

    async def _watch_stdout(self, index: int, proc: asyncio.subprocess.Process) -> None:
        """Until ``proc`` closes its stdout: note when it says it is ready; anything else it
        prints is passed on to the node's stdout."""
        assert proc.stdout is not None
        async for line in proc.stdout:
            if line == READY_LINE:
                self._ready.add(index)
                log.info("executor process ready", executor=index, pid=proc.pid)
            else:
                sys.stdout.buffer.write(line)
                sys.stdout.buffer.flush()

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop every process: SIGTERM, then SIGKILL after ``grace_s``. Safe twice."""
        self._stopping.set()
        procs = list(self._procs.values())
        for proc in procs:
            _signal(proc, signal.SIGTERM)
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        if waits:
            _, late = await asyncio.wait(waits, timeout=grace_s)
            for proc in procs:
                if proc.returncode is None:
                    log.warning("executor process did not stop in time; killing it", pid=proc.pid)
                    _signal(proc, signal.SIGKILL)
            if late:
                await asyncio.wait(late, timeout=5.0)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
