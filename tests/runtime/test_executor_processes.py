"""The supervisor of a node's extra executor processes (runtime/executors.py), on real
processes: one that exits is started again after its back-off, ``stop`` ends them
(SIGTERM, then SIGKILL for one that ignores it), and each runs in its own session so a
terminal's Ctrl-C reaches only the node."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from runtime import executors
from runtime.executors import ExecutorProcesses, executor_command

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
STUBBORN = [sys.executable, "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)"]
QUITTER = [sys.executable, "-c", "import sys; sys.exit(3)"]


async def _until(pred: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_a_process_that_exits_is_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "RESTART_MIN_S", 0.05)
    procs = ExecutorProcesses([QUITTER])
    procs.start()
    try:
        await _until(lambda: procs.starts >= 3)
    finally:
        await procs.stop()
    started = procs.starts
    await asyncio.sleep(0.3)
    assert procs.starts == started  # stopped: no more restarts


async def test_stop_ends_each_process_and_kills_one_that_ignores_sigterm() -> None:
    procs = ExecutorProcesses([SLEEPER, STUBBORN])
    procs.start()
    await _until(lambda: len(procs.pids) == 2)
    pids = procs.pids
    await asyncio.sleep(0.5)  # the stubborn one has set its SIGTERM handler
    began = time.monotonic()
    await procs.stop(grace_s=1.0)
    assert time.monotonic() - began < 8
    assert procs.pids == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    await procs.stop()  # twice is safe


async def test_each_process_runs_in_its_own_session() -> None:
    procs = ExecutorProcesses([SLEEPER])
    procs.start()
    try:
        await _until(lambda: len(procs.pids) == 1)
        assert os.getsid(procs.pids[0]) == procs.pids[0] != os.getsid(0)
    finally:
        await procs.stop()


def test_the_command_is_an_executor_only_node_on_the_same_nats_history_and_apps(tmp_path: object) -> None:
    cmd = executor_command(2, nats="nats://127.0.0.1:4222", history="sqlite:////d/h.db",
                           apps=[tmp_path], sandbox="docker", reload=False)  # type: ignore[list-item]
    assert cmd[:4] == [sys.executable, "-m", "runtime.cli", "node"]
    joined = " ".join(cmd)
    for part in ("--nats nats://127.0.0.1:4222", "--history sqlite:////d/h.db", "--roles executor",
                 "--sandbox docker", "--worker-index 2", "--no-reload", "--executors 0", f"--app {tmp_path}"):
        assert part in joined


async def test_ready_once_each_process_says_so_and_not_while_one_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "RESTART_MIN_S", 0.3)
    says = [sys.executable, "-c", "import sys, time; from runtime.executors import announce_ready; "
            "time.sleep(0.3); announce_ready(); time.sleep(float(sys.argv[1]))"]
    procs = ExecutorProcesses([[*says, "60"], [*says, "1"]])
    assert not procs.ready
    procs.start()
    try:
        await _until(lambda: procs.ready)
        await _until(lambda: not procs.ready)  # the second one exits after 1 s ...
        await _until(lambda: procs.ready)  # ... and is ready again once restarted
        assert procs.starts >= 3
    finally:
        await procs.stop()
    assert not procs.ready


async def test_no_processes_is_ready_at_once() -> None:
    assert ExecutorProcesses([]).ready
