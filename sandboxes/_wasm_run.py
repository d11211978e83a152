"""Running one guest in a fresh store, and saying in one line what happened.

Fresh per call: the ``Store`` (and so the instance, its memory and its WASI context:
stdin bytes, argv, env, read-only preopens). Everything that can be reused (engine,
linker, compiled module) comes from :class:`sandboxes._wasm_engine.WasmEngine`.
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime._extern import wrap_extern

from sandboxes import _wasm_host
from sandboxes._wasm_engine import GuestSpec, WasmEngine
from sandboxes.base import Limits, MiB

_TRAP_REASONS = {
    wasmtime.TrapCode.STACK_OVERFLOW: "stack overflow",
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "out-of-bounds memory access",
    wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS: "out-of-bounds table access",
    wasmtime.TrapCode.INDIRECT_CALL_TO_NULL: "indirect call to null",
    wasmtime.TrapCode.BAD_SIGNATURE: "indirect call signature mismatch",
    wasmtime.TrapCode.INTEGER_OVERFLOW: "integer overflow",
    wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO: "integer divide by zero",
    wasmtime.TrapCode.BAD_CONVERSION_TO_INTEGER: "invalid conversion to integer",
    wasmtime.TrapCode.UNREACHABLE: "unreachable instruction executed",
    wasmtime.TrapCode.OUT_OF_FUEL: "out of fuel",
}


@dataclass(frozen=True)
class Outcome:
    """What happened to one guest run, before it becomes a :class:`sandboxes.base.Result`.

    ``started``: ``time.perf_counter()`` when the guest's ``_start`` was entered (or when
    it was handed its request, for a pre-started one); ``ended``: when it finished or answered.
    """

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    error: str | None
    timed_out: bool
    duration_ms: float
    started: float = 0.0
    ended: float = 0.0


#: Largest table a guest may have (elements; 8 bytes each on the host).
MAX_TABLE_ELEMENTS = 1_000_000

#: ``Outcome.error`` when the sandbox closed or the caller was cancelled mid-run.
STOPPED = "stopped: the sandbox was closed or the call cancelled"


def run_guest(
    engine: WasmEngine,
    pre: wasmtime.InstancePre,
    spec: GuestSpec,
    request: bytes,
    limits: Limits,
    cancelled: threading.Event | None = None,
) -> Outcome:
    """Run one guest to completion on this thread (blocking; the GIL is released in wasm).

    Setting ``cancelled`` stops the guest at its next tick (about 10 ms).
    """
    start = time.perf_counter()
    state = _wasm_host.CallState(
        max_stdout_bytes=limits.max_stdout_bytes,
        max_stderr_bytes=limits.max_stderr_bytes,
        deadline=time.monotonic() + limits.timeout_s,
        cancelled=cancelled or threading.Event(),
    )
    _wasm_host.begin_call(state)
    try:
        store = new_store(engine, spec, limits, request)
        with engine.running():
            exit_code, failure, instance, started = start_guest(pre, store)
        error = classify(engine, state, exit_code, failure, instance, store, limits)
        return _outcome(state, exit_code, error, start, started)
    finally:
        _wasm_host.end_call()


def new_store(engine: WasmEngine, spec: GuestSpec, limits: Limits, stdin: bytes | str) -> wasmtime.Store:
    """A fresh store for one guest: WASI context, limits, the epoch watch, fuel.

    ``stdin``: the request bytes, or the host path of a file (a pipe) to read it from.
    Raises ``wasmtime.WasmtimeError`` if a preopen or the stdin path cannot be opened.
    """
    store = wasmtime.Store(engine.engine)
    store.set_wasi(_wasi_config(spec, stdin))
    # One memory of at most memory_mb; tables are host memory too (8 bytes an element).
    store.set_limits(memory_size=limits.memory_mb * MiB, table_elements=MAX_TABLE_ELEMENTS,
                     instances=1, tables=4, memories=1)
    _wasm_host.watch_store(store)
    if engine.fuel is not None:
        store.set_fuel(engine.fuel)
    return store


def start_guest(
    pre: wasmtime.InstancePre, store: wasmtime.Store
) -> tuple[int | None, wasmtime.WasmtimeError | wasmtime.Trap | None, wasmtime.Instance | None, float]:
    """Instantiate ``pre`` in ``store`` and run ``_start`` to its end, on this thread.

    Returns (exit code or None, the trap or error that ended it or None, the instance
    if it was made, ``perf_counter()`` when ``_start`` was entered). The caller keeps
    the engine's epoch ticking (``engine.running()``) meanwhile.
    """
    instance: wasmtime.Instance | None = None
    started = time.perf_counter()
    try:
        instance = pre.instantiate(store)
        start_fn = _export(store, instance, b"_start")
        if not isinstance(start_fn, wasmtime.Func):
            return None, wasmtime.WasmtimeError(NO_START), instance, started
        started = time.perf_counter()
        start_fn(store)
        return 0, None, instance, started
    except wasmtime.ExitTrap as exc:
        exc.__traceback__ = None  # see below
        return exc.code, None, instance, started
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        # The traceback holds wasmtime-py's frames, which hold the store, in a reference
        # cycle (contextlib): without this the store, its preopened directories and its
        # stdin pipe would stay open until the next garbage collection.
        exc.__traceback__ = None
        return None, exc, instance, started


NO_START = "not a WASI command: no _start export"


def _export(store: wasmtime.Store, instance: wasmtime.Instance, name: bytes) -> object:
    """One export by name, without wrapping every export as ``instance.exports()`` does."""
    item = ffi.wasmtime_extern_t()
    found = ffi.wasmtime_instance_export_get(store._context(), ctypes.byref(instance._instance),
                                             name, len(name), ctypes.byref(item))
    return wrap_extern(item) if found else None


def classify(

    engine: WasmEngine,
    state: _wasm_host.CallState,
    exit_code: int | None,
    failure: wasmtime.WasmtimeError | wasmtime.Trap | None,
    instance: wasmtime.Instance | None,
    store: wasmtime.Store,
    limits: Limits,
) -> str | None:
    """The one-line reason the run failed, or ``None`` if it succeeded. Limits come first."""
    if state.overflow == "stdout":
        return f"stdout exceeded {limits.max_stdout_bytes} bytes"
    if state.overflow == "stderr":
        return f"stderr exceeded {limits.max_stderr_bytes} bytes"
    if state.stopped == "timeout":
        return f"timed out after {limits.timeout_s:g} s"
    if state.stopped == "cancelled":
        return STOPPED
    if exit_code == 0:
        return None
    if failure is not None and str(failure) == NO_START:
        return NO_START
    if instance is None and failure is not None:  # instantiation failed
        text = _first_line(failure)
        if "memory" in text and ("limit" in text or "minimum" in text):
            return f"out of memory (limit {limits.memory_mb} MiB): {text}"
        return f"cannot start: {text}"
    if exit_code is not None:
        reason = f"exited with code {exit_code}"
    else:
        code = failure.trap_code if isinstance(failure, wasmtime.Trap) else None
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return f"out of fuel (limit {engine.fuel} units)"
        reason = "wasm trap: " + ((_TRAP_REASONS.get(code) if code else None) or _first_line(failure))
    if _near_memory_limit(instance, store, limits) or _ends_in_memory_error(state.stderr):
        return f"out of memory (limit {limits.memory_mb} MiB): {reason}"
    return reason


def _wasi_config(spec: GuestSpec, stdin: bytes | str) -> wasmtime.WasiConfig:
    wasi = wasmtime.WasiConfig()
    if spec.argv:
        wasi.argv = list(spec.argv)
    if spec.env:
        wasi.env = [list(pair) for pair in spec.env]
    for host, guest in spec.preopens:
        wasi.preopen_dir(host, guest, False)  # fs_mutable=False: read-only dir and files
    if isinstance(stdin, str):
        wasi.stdin_file = stdin
    else:
        _set_stdin_bytes(wasi, stdin)
    return wasi


def _set_stdin_bytes(wasi: wasmtime.WasiConfig, data: bytes) -> None:
    """stdin from memory: wasmtime's C API has it, wasmtime-py 50 does not wrap it."""
    vec = ffi.wasm_byte_vec_t()
    buf = (ffi.wasm_byte_t * len(data)).from_buffer_copy(data) if data else None
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), buf)  # copies; the config takes ownership
    ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))


def _near_memory_limit(instance: wasmtime.Instance | None, store: wasmtime.Store, limits: Limits) -> bool:
    """Whether the guest's memory ended at 90% of the limit or more.

    wasmtime reports a refused ``memory.grow`` to the guest as -1, not to the host, so
    a failure with memory near the limit is the best sign that the limit caused it
    (allocators grow in chunks, so "near" is generous; the guest's own reason follows).
    """
    if instance is None:
        return False
    try:
        mem = instance.exports(store).get("memory")
        return isinstance(mem, wasmtime.Memory) and mem.data_len(store) >= 0.9 * limits.memory_mb * MiB
    except wasmtime.WasmtimeError:
        return False


def _ends_in_memory_error(stderr: bytearray) -> bool:
    """Whether the guest's last words were a Python ``MemoryError`` (an allocation refused)."""
    tail = bytes(stderr[-512:]).rstrip().rsplit(b"\n", 1)[-1]
    return tail.startswith(b"MemoryError")


def _outcome(
    state: _wasm_host.CallState, exit_code: int | None, error: str | None, start: float, started: float
) -> Outcome:
    ended = time.perf_counter()
    return Outcome(
        stdout=bytes(state.stdout),
        stderr=bytes(state.stderr),
        exit_code=exit_code if error is None or exit_code else None,
        error=error,
        timed_out=state.stopped == "timeout",
        duration_ms=(ended - start) * 1000,
        started=started,
        ended=ended,
    )


def _first_line(exc: object) -> str:
    """The line of wasmtime's error that says what happened: for a trap inside a host call,
    the first line is only a header ("error while executing at wasm backtrace:") and the
    cause follows "Caused by:"."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if "Caused by:" in lines:
        causes = lines[lines.index("Caused by:") + 1:]
        cause = next((c for c in causes if not c[:1].isdigit() or ":" not in c[:4]), None)
        picked = [c.split(":", 1)[1].strip() if c[:1].isdigit() and ":" in c[:4] else c for c in causes]
        if picked:
            return "; ".join(picked[:2]) if cause is None else picked[0]
    return lines[0]
