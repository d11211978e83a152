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
    """What happened to one guest run, before it becomes a :class:`sandboxes.base.Result`."""

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    error: str | None
    timed_out: bool
    duration_ms: float


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
    exit_code: int | None = None
    failure: wasmtime.WasmtimeError | wasmtime.Trap | None = None
    instance: wasmtime.Instance | None = None
    store = wasmtime.Store(engine.engine)
    _wasm_host.begin_call(state)
    try:
        store.set_wasi(_wasi_config(spec, request))
        # One memory of at most memory_mb; tables are host memory too (8 bytes an element).
        store.set_limits(memory_size=limits.memory_mb * MiB, table_elements=MAX_TABLE_ELEMENTS,
                         instances=1, tables=4, memories=1)
        _wasm_host.watch_store(store)
        if engine.fuel is not None:
            store.set_fuel(engine.fuel)
        with engine.running():
            try:
                instance = pre.instantiate(store)
                start_fn = instance.exports(store).get("_start")
                if not isinstance(start_fn, wasmtime.Func):
                    return _outcome(state, None, "not a WASI command: no _start export", start)
                start_fn(store)
                exit_code = 0
            except wasmtime.ExitTrap as exc:
                exit_code = exc.code
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                failure = exc
        error = _error(engine, state, exit_code, failure, instance, store, limits)
        return _outcome(state, exit_code, error, start)
    finally:
        _wasm_host.end_call()


def _error(
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


def _wasi_config(spec: GuestSpec, request: bytes) -> wasmtime.WasiConfig:
    wasi = wasmtime.WasiConfig()
    wasi.argv = list(spec.argv)
    wasi.env = [list(pair) for pair in spec.env]
    for host, guest in spec.preopens:
        wasi.preopen_dir(host, guest, False)  # fs_mutable=False: read-only dir and files
    _set_stdin_bytes(wasi, request)
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


def _outcome(state: _wasm_host.CallState, exit_code: int | None, error: str | None, start: float) -> Outcome:
    return Outcome(
        stdout=bytes(state.stdout),
        stderr=bytes(state.stderr),
        exit_code=exit_code if error is None or exit_code else None,
        error=error,
        timed_out=state.stopped == "timeout",
        duration_ms=(time.perf_counter() - start) * 1000,
    )


def _first_line(exc: object) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
