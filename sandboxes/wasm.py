"""The WASM sandbox: each request runs in a fresh wasmtime instance.

Targets:

* ``module`` — ``ref`` is a WASI command module (``.wasm`` or ``.wat``) that speaks the
  guest protocol itself, in any language; it gets no preopened directory at all.
* ``python`` — ``ref`` is an app directory; it runs under CPython 3.11 for WASI with
  the SDK's shim (``python -m sluice.shim --app-dir /app``), seeing only read-only
  ``/usr`` (stdlib), ``/opt/sluice`` (SDK + msgpack) and ``/app``.

Per call: stdin is the request bytes, stdout and stderr are captured in memory and
capped, the environment is ``Target.env`` (plus the interpreter's own variables for
Python), memory is capped by ``limits.memory_mb``, CPU time by an epoch deadline of
``limits.timeout_s`` enforced inside the engine, and, if ``fuel`` is given, by
instruction fuel. ``limits.cpus``, ``pids`` and ``tmpfs_mb`` do not apply: a guest is
one thread with no processes and no writable filesystem.

A ``python`` target with ``Target.warm`` (the default) is served, when one is ready, by
a pre-started single-use instance: a fresh instance that already started the
interpreter and imported the app, handed this one request (its deadline armed at the
hand-over) and then discarded (:mod:`sandboxes._wasm_prestart`). Reusing an instance
across calls happens only for targets with ``Target.reuse`` (the app opted in with
``sluice.App(..., reuse_instances=True)``) and app directories named in ``reuse_instances_for``.

Compiled modules are cached in memory and on disk under ``cache_dir`` (default
``$SLUICE_CACHE_DIR`` or ``~/.cache/sluice``), keyed by the module's sha256, the
wasmtime version and the engine flags.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import TypeVar

import wasmtime

from sandboxes import _wasm_python
from sandboxes._wasm_engine import GuestSpec, WasmEngine
from sandboxes._wasm_pool import WarmPool
from sandboxes._wasm_prestart import Prestarted
from sandboxes._wasm_run import STOPPED, Outcome, run_guest
from sandboxes._wasm_workers import Workers
from sandboxes.base import Limits, Result, SandboxError, Target

T = TypeVar("T")


def default_cache_dir() -> Path:
    """``$SLUICE_CACHE_DIR``, else ``~/.cache/sluice``."""
    env = os.environ.get("SLUICE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "sluice"


class WasmSandbox:
    """Runs ``module`` and ``python`` targets under wasmtime. See the module docstring.

    ``cache_dir``: where compiled modules and the Python bundle are kept (created 0700).
    ``fuel``: optional instruction budget per call (``None``: only the time limit).
    ``prestart_per_target``: pre-started single-use instances kept per Python app version
    and limits (``0``: none, every call starts the interpreter); ``prestart_max``: across
    all apps. ``reuse_instances_for``: app directories whose warm instances may answer up
    to ``reuse_max_calls`` calls each, one at a time, keeping module state between them
    (the opt-in wasmtime's security model warns about; never the default).
    """

    name = "wasm"

    def __init__(
        self,
        *,
        cache_dir: str | Path | None = None,
        fuel: int | None = None,
        prestart_per_target: int = 2,
        prestart_max: int = 8,
        reuse_instances_for: Iterable[str | os.PathLike[str]] = (),
        reuse_max_calls: int = 1000,
    ) -> None:
        if fuel is not None and fuel <= 0:
            raise SandboxError(f"fuel must be a positive number of units, got {fuel}")
        if prestart_per_target < 0 or prestart_max < 0:
            raise SandboxError("prestart_per_target and prestart_max must not be negative")
        if reuse_max_calls < 1:
            raise SandboxError(f"reuse_max_calls must be at least 1, got {reuse_max_calls}")
        # App directories whose warm instances serve many calls (state crosses calls): opt-in only.
        self._reuse_for = frozenset(str(Path(d).resolve()) for d in reuse_instances_for)
        self._reuse_max_calls = reuse_max_calls
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._engine: WasmEngine | None = None
        self._fuel = fuel
        self._lock = threading.Lock()
        # (kind, resolved ref, mtime_ns, size, env) -> prepared module and guest spec
        self._ready: dict[tuple[object, ...], tuple[wasmtime.InstancePre, GuestSpec]] = {}
        self._bundle: Path | None = None
        self._paths: dict[tuple[str, str], Path] = {}  # (kind, ref) -> checked absolute path
        # Each call blocks one thread while wasm runs (the GIL is released meanwhile).
        self._workers = Workers(max(2, os.cpu_count() or 2), "sluice-wasm")
        self._closed = False
        self._inflight: set[threading.Event] = set()  # one per running call: set it to stop the guest
        self._warm = WarmPool(prestart_per_target, prestart_max)
        self._reuse_turns: dict[Hashable, asyncio.Semaphore] = {}
        # Python target -> (looked up at, key, app key): see _looked_up
        self._keys: dict[Hashable, tuple[float, tuple[object, ...], Hashable]] = {}

    # --- Sandbox protocol ----------------------------------------------------------

    async def prepare(self, target: Target) -> None:
        """Compile (or load from cache) what ``target`` needs. Raises :class:`SandboxError`."""
        await self._in_pool(self._prepared, target)

    async def run(self, target: Target, request: bytes, limits: Limits) -> Result:
        """Run ``request`` in a fresh instance; guest failures come back in ``Result.error``."""
        began = time.perf_counter()
        _check_limits(limits)
        # Fast path on the loop (a stat and a dict lookup): a thread hop costs ~0.07 ms.
        key, app_key = self._looked_up(target)
        ready = self._ready.get(key) if not self._closed else None
        if ready is None:
            ready = await self._in_pool(self._prepared, target)
        pre, spec = ready
        engine = self._engine_or_raise()
        if target.kind == "python" and target.warm and self._warm.enabled:
            calls = self._reuse_max_calls if target.reuse or str(key[1]) in self._reuse_for else 1
            warm_key = (app_key, limits.memory_mb, calls)
            # Guests are started once this call has its answer: a start-up (~80 ms of CPU)
            # would otherwise compete with the call for the cores, cold or warm.
            refill = functools.partial(self._refill, warm_key, calls, engine, pre, spec, limits)
            if calls > 1:  # reused guests: wait for one of them rather than start another
                async with self._turns(warm_key):
                    return await self._warm_call(warm_key, (engine, pre, spec), request, limits, began, refill)
            return await self._warm_call(warm_key, (engine, pre, spec), request, limits, began, refill)
        return await self._cold_call(engine, pre, spec, request, limits, began)

    async def _warm_call(self, warm_key: Hashable, prepared: tuple[WasmEngine, wasmtime.InstancePre, GuestSpec],
                         request: bytes, limits: Limits, began: float, refill: Callable[[], None]) -> Result:
        """Hand ``request`` to a waiting guest of ``warm_key``; without one, run it cold."""
        guest = self._warm.take(warm_key)
        answer = guest.hand_over(request, limits) if guest is not None else None
        if guest is not None and answer is not None:
            try:
                return await self._answered(guest, answer, began)
            finally:
                refill()
        if guest is not None:  # it ended, or its start-up wrote past this call's caps: run cold
            guest.stop()
        try:
            return await self._cold_call(*prepared, request, limits, began)
        finally:
            refill()

    def _turns(self, warm_key: Hashable) -> asyncio.Semaphore:
        """Calls of a reuse target in flight at once: as many as it may have guests."""
        sem = self._reuse_turns.get(warm_key)
        if sem is None:
            sem = self._reuse_turns[warm_key] = asyncio.Semaphore(self._warm.per_key)
        return sem

    async def _cold_call(self, engine: WasmEngine, pre: wasmtime.InstancePre, spec: GuestSpec, request: bytes,
                         limits: Limits, began: float) -> Result:
        """Run ``request`` in an instance started for it alone."""
        cancelled = threading.Event()
        self._inflight.add(cancelled)
        try:
            outcome = await self._in_pool(run_guest, engine, pre, spec, request, limits, cancelled)
        except asyncio.CancelledError:
            cancelled.set()  # the worker thread stops the guest at its next tick
            raise
        finally:
            self._inflight.discard(cancelled)
        return self._result(outcome, began, warm=False)

    async def close(self) -> None:
        """Stop sleeping guests, wait for running calls to end, drop the caches. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for cancelled in list(self._inflight):
            cancelled.set()  # running guests stop at their next tick, sleeping ones wake
        await asyncio.to_thread(self._warm.close)  # pre-started guests waiting for a call end now
        await asyncio.to_thread(self._workers.shutdown)
        if self._engine is not None:
            self._engine.close()
        self._ready.clear()

    async def __aenter__(self) -> WasmSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- internals -------------------------------------------------------------------

    async def _in_pool(self, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise SandboxError("the wasm sandbox is closed")
        return await self._workers.submit(fn, *args)

    async def _answered(
        self, guest: Prestarted, answer: concurrent.futures.Future[Outcome], began: float
    ) -> Result:
        """Wait for a pre-started guest's answer to the request it was handed."""
        cancelled = guest.state.cancelled
        self._inflight.add(cancelled)
        idle_ms = guest.idle_ms
        try:
            outcome = await asyncio.wrap_future(answer)
        except asyncio.CancelledError:
            cancelled.set()  # its thread stops the guest at its next tick
            raise
        finally:
            self._inflight.discard(cancelled)
            if guest.reusable:  # only for reuse targets, and only if it answered cleanly
                self._warm.give_back(guest)
            else:
                self._warm.retire(guest)
        return self._result(outcome, began, warm=True, prestarted_ms=idle_ms)

    def _refill(
        self, warm_key: Hashable, calls: int, engine: WasmEngine, pre: wasmtime.InstancePre, spec: GuestSpec,
        limits: Limits,
    ) -> None:
        """Keep pre-started guests waiting for ``warm_key`` (on the loop; starting one is a thread start)."""
        if self._closed:
            return
        serve = _wasm_python.serving(spec)
        try:
            self._warm.fill(warm_key, lambda key, on_end: Prestarted(engine, pre, serve, limits, on_end, calls, key),
                            reuse=calls > 1)
        except (OSError, RuntimeError):  # out of descriptors or threads: calls run cold, which still works
            pass

    def _result(self, outcome: Outcome, began: float, *, warm: bool, prestarted_ms: float | None = None) -> Result:
        """The contract's result for ``outcome``; ``began``: ``perf_counter()`` when ``run`` was entered."""
        if outcome.error == STOPPED and self._closed:
            raise SandboxError("the wasm sandbox was closed during the run")
        done = time.perf_counter()
        timings = {
            "acquire_ms": max(outcome.started - began, 0.0) * 1000,  # to the guest's start (or hand-over)
            "run_ms": max(outcome.ended - outcome.started, 0.0) * 1000,  # the guest's work
            "return_ms": max(done - outcome.ended, 0.0) * 1000,  # back to the caller
        }
        if prestarted_ms is not None:
            timings["prestarted_ms"] = prestarted_ms  # how long ago the guest serving it was started
        return Result(
            ok=outcome.error is None,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            exit_code=outcome.exit_code,
            error=outcome.error,
            duration_ms=(done - began) * 1000,
            timed_out=outcome.timed_out,
            timings=timings,
            warm=warm,
        )

    def _engine_or_raise(self) -> WasmEngine:
        with self._lock:
            if self._engine is None:
                try:
                    self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                except OSError as exc:
                    raise SandboxError(f"cannot use cache dir {self.cache_dir}: {exc.strerror}") from None
                self._engine = WasmEngine(self.cache_dir, self._fuel)
            return self._engine

    def _key(self, target: Target) -> tuple[object, ...]:
        """What a prepared target is cached under; raises :class:`SandboxError` for a bad one."""
        return self._looked_up(target)[0]

    def _looked_up(self, target: Target) -> tuple[tuple[object, ...], Hashable]:
        """:meth:`_key`, and for a Python app its :func:`_app_key` (else ``None``).

        A Python app's are looked up again (stat calls) at most every :data:`RECHECK_S`: a
        busy node runs it hundreds of times a second, and each system call on the event
        loop's thread lets a guest's thread take the GIL from it.
        """
        if target.kind != "python":  # a module's stat is its key: a changed file compiles again at once
            return self._look_up(target), None
        now = time.monotonic()
        ident = (target.ref, tuple(target.env.items()) if target.env else ())
        known = self._keys.get(ident)
        if known is not None and now - known[0] < RECHECK_S:
            return known[1], known[2]
        key = self._look_up(target)
        app_key = _app_key(key)
        self._keys[ident] = (now, key, app_key)
        return key, app_key

    def _look_up(self, target: Target) -> tuple[object, ...]:
        if target.kind == "image":
            raise SandboxError("the wasm sandbox runs modules and python apps, not container images")
        path = self._paths.get((target.kind, target.ref))
        try:
            st = os.stat(path) if path is not None else None  # a changed module file is compiled again
        except OSError:
            st = None
        if path is None or st is None:
            if target.kind == "module":
                path = _module_path(target.ref)
            elif target.kind == "python":
                path = _wasm_python.check_app_dir(target.ref)
            else:
                raise SandboxError(f"unknown target kind {target.kind!r}: use 'module' or 'python'")
            st = path.stat()
            self._paths[(target.kind, target.ref)] = path
        return (target.kind, str(path), st.st_mtime_ns, st.st_size, tuple(sorted(target.env.items())))

    def _prepared(self, target: Target) -> tuple[wasmtime.InstancePre, GuestSpec]:
        """The module and guest spec for ``target`` (blocking; runs in the pool)."""
        key = self._key(target)
        ready = self._ready.get(key)
        if ready is not None:
            return ready
        path = Path(str(key[1]))
        engine = self._engine_or_raise()
        if target.kind == "module":
            pre = engine.load(path.read_bytes(), name=str(path))
            spec = GuestSpec(argv=(path.name,), env=tuple(target.env.items()))
        else:
            _wasm_python.verified(_wasm_python.INTERPRETER)  # the pin, even when the cache has it
            pre = engine.load(_wasm_python.interpreter_bytes, "CPython for WASI",
                              digest=_wasm_python.PINNED[_wasm_python.INTERPRETER])
            if self._bundle is None:
                self._bundle = _wasm_python.bundle(self.cache_dir)
            spec = _wasm_python.guest(self._bundle, path, target.env)
        self._ready[key] = (pre, spec)
        return pre, spec


#: How long a target's looked-up key (its file's stat) is trusted before it is looked up again.
RECHECK_S = 0.2


def _app_key(key: tuple[object, ...]) -> Hashable:
    """A prepared Python target with its app.py's stat: an edited app.py gets new guests.

    With the memory cap, it is what a pre-started guest is fixed to. Output caps and the
    deadline are set at hand-over, so calls with different ones (an introspection and a
    step, say) share guests.
    """
    try:
        st = os.stat(os.path.join(str(key[1]), "app.py"))
        app = (st.st_mtime_ns, st.st_size)
    except OSError:
        app = (0, 0)
    return (key, app)


def _module_path(ref: str) -> Path:
    path = Path(ref).resolve()
    if not path.is_file():
        raise SandboxError(f"wasm module {ref!r} does not exist")
    if path.suffix not in (".wasm", ".wat"):
        raise SandboxError(f"wasm module {ref!r} must be a .wasm or .wat file")
    return path


def _check_limits(limits: Limits) -> None:
    if limits.memory_mb <= 0:
        raise SandboxError(f"memory_mb must be positive, got {limits.memory_mb}")
    if limits.timeout_s <= 0:
        raise SandboxError(f"timeout_s must be positive, got {limits.timeout_s}")
    if limits.max_stdout_bytes < 0 or limits.max_stderr_bytes < 0:
        raise SandboxError("max_stdout_bytes and max_stderr_bytes must not be negative")
