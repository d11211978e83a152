"""The ground every hostile-guest case stands on: guests, attacks, and what must be left.

A case names an attack (a small ``sluice`` app written to a tmp dir, or a WAT module)
and runs it through :func:`attack` in a ``guest``:

* ``guest`` is one sandbox of a kind: ``docker-runc``, ``docker-runsc`` (skipped when
  gVisor is not registered), ``wasm-python`` (CPython-on-WASI) or ``wasm-module`` (a
  raw WASI module). Python cases parametrize it with :data:`PYTHON_KINDS`; module cases
  use :data:`MODULE_KINDS`.
* :func:`attack` runs the attack while normal calls run beside it (at least one,
  overlapping it), then one more normal call: each normal call must succeed, so the
  attack failed only itself. The host's secret (``SLUICE_TEST_SECRET``) must appear in
  nothing the attack printed.
* When the case ends, the guest fixture closes the sandbox and checks nothing is left:
  no container of the sandbox, no process naming one of its containers (runc shims,
  ``runsc-sandbox``, ``runsc-gofer``) after 5 s, no file in the system temp dir (the
  fixture points ``tempfile`` and ``TMPDIR`` at an empty dir of its own), no thread and
  no file descriptor of this process that the sandbox opened.

Each case ends in a failed step: ``Result.ok`` false with a clear ``error``, or (for an
attempt the guest's own code sees refused) an ``error``/``step_error`` op. Probe apps
raise ``Denied`` with a JSON map of attempt -> error when every attempt was refused, and
return ``{"leaked": ...}`` when one got through; :func:`refused` reads either.

How each case failed is noted on the test (``user_properties``); ``conftest.py`` writes
the results table from those notes when ``SLUICE_HOSTILE_TABLE`` names a file.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import secrets
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from sandboxes.base import Limits, MiB, Result, Sandbox, SandboxError, Target
from sandboxes.docker import DockerSandbox
from sandboxes.wasm import WasmSandbox, default_cache_dir
from sluice import protocol
from sluice.protocol import ProtocolError
from tests.conformance.sandbox import call, step_op
from tests.sandboxes import docker_fixtures
from tests.sandboxes.wasm_fixtures import ECHO

PYTHON_KINDS = [
    pytest.param("docker-runc", marks=pytest.mark.docker, id="docker-runc"),
    pytest.param("docker-runsc", marks=pytest.mark.docker, id="docker-runsc"),
    pytest.param("wasm-python", id="wasm-python"),
]
MODULE_KINDS = [pytest.param("wasm-module", id="wasm-module")]

#: What an attack gets: small caps, so the suite stays quick; the timeout is long enough for
#: a busy 2-core machine, since most attacks are about something else than time.
ATTACK = Limits(timeout_s=10, memory_mb=64, pids=64, tmpfs_mb=8, max_stdout_bytes=1 * MiB, max_stderr_bytes=1 * MiB)
#: What an attack on time gets (spinning, sleeping, ignoring signals): a short timeout.
TIMED = replace(ATTACK, timeout_s=1.5)
#: What a normal call gets: the attack's limits, so a warm pool may serve it from the attack's
#: container (pools are keyed by memory, cpus, pids and tmpfs), with a generous timeout, since
#: it shares 2 cores with the attack and gVisor starts slowly.
NORMAL = replace(ATTACK, timeout_s=60, max_stdout_bytes=8 * MiB)
#: At most this many normal calls run beside one attack.
MAX_BESIDE = 40
#: How long processes of a removed container may take to exit (s).
PROCESS_GRACE_S = 5.0
#: The environment variable holding the host's secret during every case.
SECRET_ENV = "SLUICE_TEST_SECRET"

#: Known bug: gVisor's own threads count against the container's pids limit.
RUNSC_PIDS_BUG = (
    "runsc (ptrace platform) runs each guest process with host threads and stub processes in the "
    "container's pids cgroup, so Limits.pids=64 is spent after ~8 guest processes or threads and the "
    "sandbox dies (Go runtime cannot make a thread) with a bare 'exited with code 2' - the shim's own "
    "'bad request' code - instead of an error naming the pids limit"
)






#: Known bug (sandboxes/_docker_api.py): create bodies over 1 MiB go to aiohttp as raw bytes.
LARGE_BODY_BUG = (
    "EngineClient.call passes json=body to aiohttp, which serialises it to bytes and, past 1 MiB "
    "(a target with a 1 MiB environment), warns ResourceWarning 'Sending a large body directly with "
    "raw bytes might lock the event loop'; under filterwarnings=error the run raises that warning "
    "instead of a Result or SandboxError"
)


#: Head of every hostile app: ``probe``/``Denied``, and the ``normal`` and ``census`` functions.
PRELUDE = '''\
import json
import os
import sys

import sluice

app = sluice.App({name!r})


class Denied(Exception):
    """Every attempt of a probe was refused; the message is JSON: attempt -> error."""


def probe(attempts):
    """Run each attempt; raise Denied if all raised, else return what got through."""
    denied, leaked = {{}}, {{}}
    for name, attempt in attempts.items():
        try:
            leaked[name] = repr(attempt())[:300]
        except Exception as exc:
            denied[name] = f"{{type(exc).__name__}}: {{exc}}"[:300]
    if leaked:
        return {{"leaked": leaked, "denied": denied}}
    raise Denied(json.dumps(denied, sort_keys=True))


def protocol_fds():
    """Where the response can be written: fd 1 on WASI; the shim's saved copy of it elsewhere."""
    if not hasattr(os, "dup2"):
        return [1]
    err = os.fstat(2)
    fds = []
    for fd in range(3, 64):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) != (err.st_dev, err.st_ino) and os.get_inheritable(fd) is False:
            fds.append(fd)
    return fds


@app.function(id="normal")
def normal(ctx):
    return ctx.step.run("normal", lambda: {{"n": ctx.event.data["n"] + 1}})


@app.function(id="census")
def census(ctx):
    def count():
        # This call's own process, and the process that started it (a warm container's
        # trusted server, which forks a fresh child per call), are not leftovers.
        try:  # WASI has no /proc, and no getppid
            mine = {{str(os.getpid()), str(os.getppid())}}
            others = [p for p in os.listdir("/proc") if p.isdigit() and p not in mine]
            tasks = sum(len(os.listdir(f"/proc/{{p}}/task")) for p in others)
            own_tasks = len(os.listdir(f"/proc/{{os.getpid()}}/task"))
        except (OSError, AttributeError):
            others, tasks, own_tasks = None, None, None
        try:
            tmp = sorted(os.listdir("/tmp"))
        except OSError:
            tmp = None
        return {{"pids": None if others is None else len(others), "tasks": tasks, "own_tasks": own_tasks,
                 "tmp": tmp}}

    return ctx.step.run("census", count)

'''


def app_source(name: str, body: str) -> str:
    """The full ``app.py`` of hostile app ``name``: :data:`PRELUDE` then ``body``."""
    return PRELUDE.format(name=name) + textwrap.dedent(body)


def app_fixture(name: str, body: str) -> Callable[..., Target]:
    """A session fixture: app ``name`` written once to a tmp dir (so Docker builds it once)."""

    @pytest.fixture(scope="session")
    def app(tmp_path_factory: pytest.TempPathFactory) -> Target:
        app_dir = tmp_path_factory.mktemp(f"hostile-{name}")
        (app_dir / "app.py").write_text(app_source(name, body))
        return Target("python", str(app_dir))

    return app


def module_target(tmp_path: Path, name: str, wat: str) -> Target:
    """A ``module`` target for WAT text ``wat``, saved as ``tmp_path/name.wat``."""
    path = tmp_path / f"{name}.wat"
    path.write_text(wat)
    return Target("module", str(path))


# --- the guest ---------------------------------------------------------------------------

@dataclass
class Guest:
    """One sandbox of one kind, for one case."""

    kind: str
    _sandbox: Sandbox | None
    secret: str  # the value of SLUICE_TEST_SECRET in this process while the case runs
    echo: Target  # the normal module beside module attacks: echoes its stdin
    node: pytest.Item
    normal_calls: int = 0
    outcomes: list[str] = field(default_factory=list)

    @property
    def sandbox(self) -> Sandbox:
        assert self._sandbox is not None, "the case is over: its sandbox is closed"
        return self._sandbox

    @property
    def is_docker(self) -> bool:
        return self.kind.startswith("docker")

    def note(self, outcome: str) -> str:
        """Record how the attack ended (for the results table); returns ``outcome``."""
        self.outcomes.append(outcome)
        self.node.user_properties.append(("outcome", outcome))
        return outcome


async def attack(
    guest: Guest, target: Target, request: bytes, limits: Limits = ATTACK, *, normal: Target | None = None
) -> Result | SandboxError:
    """Run one attack with normal calls beside it and one after; the attack's result.

    The normal calls go to ``normal``: by default ``target`` itself for a Python app (so a
    warm pool may hand them the attack's guest), the echo module for a module attack.
    A :class:`SandboxError` from the attack (a module that cannot link, say) is returned,
    not raised, so the normal call after it still runs.
    """
    normal_target = normal or (target if target.kind == "python" else guest.echo)
    try:
        await guest.sandbox.prepare(target)  # an image build or a compile is not the attack's time
    except SandboxError as exc:
        await normal_call(guest, normal_target)
        return exc
    task = asyncio.create_task(guest.sandbox.run(target, request, limits))
    await asyncio.sleep(0)  # the attack takes its guest first (a warm one, if one is idle)
    try:
        beside = 0
        while beside < MAX_BESIDE and (beside == 0 or not task.done()):
            await normal_call(guest, normal_target)
            beside += 1
        try:
            result: Result | SandboxError = await task
        except SandboxError as exc:
            result = exc
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    await normal_call(guest, normal_target)  # the sandbox still serves afterwards
    if isinstance(result, Result):
        leaked = guest.secret.encode() in result.stdout + result.stderr
        assert not leaked, "the host's secret appeared in the attack's output"
    return result


async def normal_call(guest: Guest, target: Target) -> None:
    """One ordinary call of ``target`` that must succeed with the right answer."""
    n = guest.normal_calls
    guest.normal_calls += 1
    if target.kind == "python":
        result = await guest.sandbox.run(target, call("normal", {"n": n}), NORMAL)
        assert step_op(result)["data"] == {"n": n + 1}, f"normal call {n} beside the attack went wrong"
    else:
        ping = f"ping {n}".encode()
        result = await guest.sandbox.run(target, ping, NORMAL)
        assert result.ok and result.stdout == ping, f"normal call {n} beside the attack went wrong: {result}"


def failure(result: Result | SandboxError) -> str:
    """How the attack failed, in one line; fails the case if it succeeded.

    ``Result.ok`` false gives its ``error``; a response that does not decode gives the
    :class:`ProtocolError`; an ``error``/``step_error`` op gives its name and message.
    """
    if isinstance(result, SandboxError):
        return f"SandboxError: {result}"
    if not result.ok:
        assert result.error, result
        return result.error
    try:
        response = protocol.decode_response(result.stdout)
    except ProtocolError as exc:
        return f"ProtocolError: {exc}"
    ops = response["ops"]
    if len(ops) == 1 and ops[0]["op"] in ("error", "step_error"):
        err = ops[0]["error"]
        return f"{err['name']}: {err['message']}"
    pytest.fail(f"the attack succeeded: {ops}")


def refused(guest: Guest, result: Result | SandboxError) -> dict[str, str]:
    """For a probe app: attempt -> the error that refused it, noted on the case. Fails the
    case (noting what got through) if any attempt succeeded."""
    assert isinstance(result, Result), result
    op = step_op(result)
    if op["op"] == "step" and isinstance(op.get("data"), dict) and "leaked" in op["data"]:
        leaked = op["data"]["leaked"]
        guest.note("GOT THROUGH: " + ", ".join(sorted(leaked)))
        pytest.fail(f"got through: {leaked} (refused: {op['data']['denied']})")
    assert op["op"] == "step_error" and op["error"]["name"] == "Denied", op
    denied: dict[str, str] = json.loads(op["error"]["message"])
    guest.note("; ".join(f"{k}: {v.split(':', 1)[0]}" for k, v in sorted(denied.items())))
    return denied


def run_s(result: Result) -> float:
    """How long the guest ran (s): ``timings["run_ms"]`` where the driver says, else the whole call."""
    return float(result.timings.get("run_ms", result.duration_ms)) / 1000


def stopped_in_time(result: Result | SandboxError) -> Result:
    """``result``, after checking it ended within 3 s of :data:`TIMED`'s timeout."""
    assert isinstance(result, Result), result
    assert run_s(result) < TIMED.timeout_s + 3.0, f"stopped late: {result}"
    return result


def known_bug(guest: Guest, kinds: tuple[str, ...], reason: str) -> None:
    """Mark this case xfail(strict) on ``kinds``: a sandbox bug lets the attack through there."""
    if guest.kind in kinds:
        guest.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))


#: Calls made at once to reach every idle guest a warm pool may hold after an attack.
SWEEP = 4


async def sweep(guest: Guest, target: Target, function: str) -> list[dict[str, Any]]:
    """Call ``function`` of ``target`` :data:`SWEEP` times at once, so that every guest a
    pool may hand out next (the attack's among them) serves one; each call's op."""
    results = await asyncio.gather(*(
        guest.sandbox.run(target, call(function, {"n": n}), NORMAL) for n in range(SWEEP)
    ))
    return [step_op(result) for result in results]


async def assert_no_residue(guest: Guest, target: Target) -> None:
    """Whatever guest serves the next call of ``target`` has no process but its own (and the
    sandbox's server that started it) and an empty ``/tmp``: nothing an earlier call left
    (processes, threads, files) reaches a later one."""
    for op in await sweep(guest, target, "census"):
        seen = op["data"]
        if seen["pids"] is not None:
            assert seen["pids"] == 0, f"a later call shares its guest with {seen['pids']} processes: {seen}"
            assert seen["own_tasks"] <= 2, f"a later call shares its guest with leftover threads: {seen}"
        assert not seen["tmp"], f"a later call finds an earlier call's files in /tmp: {seen['tmp']}"


# --- fixtures ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def hostile_wasm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The product's own cache dir (``$SLUICE_CACHE_DIR`` or ``~/.cache/sluice``): compiled
    modules there are keyed by content, wasmtime version and flags, so sharing it is safe,
    and CPython for WASI (10-20 s to compile here) is compiled once per machine, not per run.

    One module is run here first, so that what wasmtime sets up once a process (an I/O
    runtime with three file descriptors) is not taken for a case's leftovers.
    """
    cache = default_cache_dir()
    echo = module_target(tmp_path_factory.mktemp("hostile-warm-up"), "echo", ECHO)

    async def once() -> None:
        async with WasmSandbox(cache_dir=cache) as sandbox:
            result = await sandbox.run(echo, b"warm", NORMAL)
            assert result.ok and result.stdout == b"warm", result

    worker = threading.Thread(target=asyncio.run, args=(once(),), name="hostile-warm-up")
    worker.start()
    worker.join(60)
    return cache


@pytest.fixture
async def guest(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Guest]:
    """A sandbox of kind ``request.param``; afterwards, nothing of it may be left."""
    kind: str = request.param
    if kind.startswith("docker"):
        request.getfixturevalue("docker_engine")  # skips on a laptop without one, fails under CI
        runtime = kind.removeprefix("docker-")
        if runtime == "runsc" and '"runsc"' not in docker_fixtures.docker(
            "info", "--format", "{{json .Runtimes}}"
        ).stdout:
            pytest.skip("runsc is not registered: scripts/docker-engine.sh --gvisor")
    wasm_cache = request.getfixturevalue("hostile_wasm_cache")
    secret = secrets.token_hex(16)
    monkeypatch.setenv(SECRET_ENV, secret)
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    echo = module_target(tmp_path, "echo", ECHO)
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()

    sandbox: Sandbox
    watch: _ContainerWatch | None = None
    if kind.startswith("docker"):
        docker = DockerSandbox(runtime=kind.removeprefix("docker-"))  # type: ignore[arg-type]
        watch = _ContainerWatch(docker.id, tmp_path / "container-events.txt")
        sandbox = docker
    else:
        sandbox = WasmSandbox(cache_dir=wasm_cache)
    guest = Guest(kind, sandbox, secret, echo, request.node)
    sandbox_id = str(getattr(sandbox, "id", ""))
    try:
        yield guest
    finally:
        await sandbox.close()
        # What a closed sandbox still holds goes with it: drop it before counting.
        guest._sandbox = None
        del sandbox
        gc.collect()
        if watch is not None:
            ids = await watch.stop()
            assert ids, "the engine reported no container of this sandbox: is the watch broken?"
            left = containers_of(sandbox_id)
            assert left == [], f"containers left behind: {left}"
            lingering = await _eventually_empty(lambda: _processes_naming(ids), PROCESS_GRACE_S)
            assert lingering == [], f"processes outlived their containers: {lingering}"
    extra = await _eventually_empty(lambda: _new_threads(threads_before), 2.0)
    assert extra == [], f"threads left running after close: {extra}"
    leaked_fds = await _eventually_empty(lambda: sorted(_open_fds() - fds_before), 2.0)
    assert leaked_fds == [], f"file descriptors left open after close: {_describe_fds(leaked_fds)}"
    left_files = sorted(p.name for p in system_tmp.iterdir())
    assert left_files == [], f"files left in the system temp dir: {left_files}"


# --- leftovers ---------------------------------------------------------------------------

class _ContainerWatch:
    """The ids of every container a Docker sandbox creates (one-shot or warm), from the
    engine's event stream: one-shot ones carry ``sluice.sandbox=<id>``, warm ones
    ``sluice.pool=<id>``."""

    def __init__(self, sandbox_id: str, log: Path) -> None:
        self._id = sandbox_id
        self._log = log
        self._out = log.open("w")
        fmt = '{{.ID}} {{index .Actor.Attributes "sluice.sandbox"}} {{index .Actor.Attributes "sluice.pool"}}'
        self._proc = subprocess.Popen(
            ["docker", "events", "--since", f"{time.time() - 2:.3f}", "--filter", "type=container",
             "--filter", "event=create", "--filter", "label=sluice", "--format", fmt],
            stdout=self._out, stderr=subprocess.DEVNULL,
        )

    async def stop(self) -> list[str]:
        await asyncio.sleep(0.3)  # the stream is live; give the last events a moment to arrive
        self._proc.terminate()
        await asyncio.to_thread(self._proc.wait, 10)
        self._out.close()
        lines = (line.split() for line in self._log.read_text().splitlines())
        return [parts[0] for parts in lines if self._id in parts[1:]]


def containers_of(sandbox_id: str) -> list[str]:
    """Every container (any state) of the Docker sandbox ``sandbox_id``, one-shot or warm."""
    return sorted({*docker_fixtures.containers_labelled(f"sluice.sandbox={sandbox_id}"),
                   *docker_fixtures.containers_labelled(f"sluice.pool={sandbox_id}")})


def _processes_naming(ids: list[str]) -> list[str]:
    """``pid: cmdline`` of every process whose command line holds one of the container ``ids``."""
    if not ids:
        return []
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if any(cid in args for cid in ids):
            found.append(f"{cmdline.parent.name}: {args[:160]}")
    return found


def _new_threads(before: set[threading.Thread]) -> list[str]:
    # asyncio_N: the event loop's default executor (image builds); it goes with the loop.
    return sorted(t.name for t in threading.enumerate()
                  if t not in before and t.is_alive() and not t.name.startswith("asyncio_"))


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _describe_fds(fds: list[int]) -> list[str]:
    out = []
    for fd in fds:
        try:
            out.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            out.append(str(fd))
    return out


async def _eventually_empty(look: Callable[[], list[Any]], within_s: float) -> list[Any]:
    """``look()`` until it is empty or ``within_s`` passed; its last answer."""
    deadline = time.monotonic() + within_s
    found = look()
    while found and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        found = look()
    return found
