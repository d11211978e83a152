"""Host-side replacements for the WASI calls the sandbox must control itself.

wasmtime's own WASI implementation handles everything else (stdin from bytes, args,
env, read-only preopens, random). Three preview1 imports are shadowed in the linker:

* ``fd_write`` — stdout and stderr go to in-memory buffers capped per call; past a cap
  writes fail and the guest is stopped at the next tick. wasmtime-py's own ``stdout_custom`` callbacks run on
  wasmtime's tokio threads and can abort the process at interpreter exit; these run
  on the calling thread instead. Being on every call's path, it is a raw callback on
  wasmtime's C API (no wasmtime-py trampoline) that bounds-checks every guest pointer.
* ``poll_oneoff`` — the only preview1 call that blocks (``sleep``). A guest blocked in
  the host never reaches an epoch check, so sleeps are cut at the call's deadline.
* ``clock_time_get`` — so ``poll_oneoff`` and the guest agree on what "now" is for
  absolute (``TIMER_ABSTIME``) sleeps.

Stopping a guest: every store gets an epoch deadline of one tick and
:func:`on_epoch_deadline` as its deadline callback, so at every tick the engine
interrupts the guest (even in a loop that never calls the host) and asks whether to go
on. It traps the guest once its time is up, an output cap was passed, or the call was
cancelled (the sandbox closed, or the caller gave up). Lowering a store's deadline from
a host call would not do: compiled code keeps the deadline it loaded on function entry
until that one passes.

Per-call state lives in a thread-local :class:`CallState`: each call runs on its own
worker thread, and host functions run synchronously on that thread. These functions
never raise: wasmtime-py keeps the last host exception in a process-wide global, which
concurrent calls would mix up; every failure becomes a WASI errno instead.
"""

from __future__ import annotations

import ctypes
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi

WASI = "wasi_snapshot_preview1"

# WASI preview1 errno values.
_OK, _EBADF, _EFAULT, _EINVAL, _EIO = 0, 8, 21, 28, 29

# WASI preview1 layouts (little-endian): subscription is 48 bytes, event 32 bytes.
_SUB = struct.Struct("<QB7xIxxxxQQH6x")  # userdata, tag, clock id, timeout, precision, flags
_EVENT = struct.Struct("<QHBxxxxxQH6x")  # userdata, error, type, nbytes, flags
_TAG_CLOCK = 0
_ABSTIME = 1
_U32 = struct.Struct("<I")
_IOVEC = struct.Struct("<II")


@dataclass
class CallState:
    """What one guest run has written and may still write (bytes), and its deadline."""

    max_stdout_bytes: int
    max_stderr_bytes: int
    deadline: float  # time.monotonic() seconds when the run's time is up
    cancelled: threading.Event  # set when the sandbox closes or the caller gives up: guest stops
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    overflow: str | None = None  # "stdout" or "stderr" once a cap was passed
    stopped: str | None = None  # why the guest was stopped: "timeout", "overflow", "cancelled", "answered"
    #: Called on the guest's thread after each write to stdout (must not raise); a
    #: pre-started guest uses it to see its framed answer complete.
    on_stdout: Callable[[], None] | None = None
    answered: bool = False  # set once the answer is out: the guest is stopped at the next tick

    def stop_reason(self) -> str | None:
        """Why the guest must stop now, if it must."""
        if self.overflow is not None:
            return "overflow"
        if self.cancelled.is_set():
            return "cancelled"
        if self.answered:
            return "answered"
        if time.monotonic() >= self.deadline:
            return "timeout"
        return None


_local = threading.local()


def begin_call(state: CallState) -> None:
    """Make ``state`` the current thread's call state."""
    _local.state = state


def end_call() -> None:
    _local.state = None


def _state() -> CallState | None:
    return getattr(_local, "state", None)


_deadline_fn = _bindings._wasmtime_store_epoch_deadline_callback.argtypes  # the C callback types
_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE


@_deadline_fn[1]  # type: ignore[untyped-decorator,misc]
def on_epoch_deadline(_ctx: Any, _data: Any, delta: Any, kind: Any) -> int:
    """Called by wasmtime on the guest's thread at every tick: trap (an error) or go on."""
    try:
        state = _state()
        reason = "cancelled" if state is None else state.stop_reason()
        if reason is None:
            delta[0] = 1
            kind[0] = _CONTINUE
            return 0
        if state is not None:
            state.stopped = reason
        err = ffi.wasmtime_error_new(f"sluice: guest stopped ({reason})".encode())
        return ctypes.cast(err, ctypes.c_void_p).value or 0
    except Exception:  # never raise into wasmtime: keep going, the next tick asks again
        delta[0] = 1
        kind[0] = _CONTINUE
        return 0


@_deadline_fn[3]  # type: ignore[untyped-decorator,misc]
def _no_finalizer(_data: Any) -> None:
    return None


def watch_store(store: wasmtime.Store) -> None:
    """Interrupt ``store``'s guest every tick and let :func:`on_epoch_deadline` decide."""
    ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), on_epoch_deadline, None, _no_finalizer)
    store.set_epoch_deadline(1)


_MEMORY = b"memory"
_EXTERN_MEMORY = 3  # WASMTIME_EXTERN_MEMORY
_U32_MASK = 0xFFFFFFFF


@ffi.wasmtime_func_callback_t  # type: ignore[untyped-decorator,misc]
def _fd_write_raw(_env: Any, caller: Any, args: Any, _nargs: int, results: Any, _nresults: int) -> int:
    """``fd_write(fd, iovs, iovs_len, nwritten) -> errno``, straight on wasmtime's C API.

    Every call of every guest writes through here, so it skips wasmtime-py's trampoline
    (a ``Caller`` object and a ``Val`` per argument: about 0.03 ms a call) and reads
    guest memory through one pointer, bounds-checked against the memory's size.
    """
    errno = _EIO
    try:
        errno = _fd_write(caller, args[0].of.i32, args[1].of.i32 & _U32_MASK,
                          args[2].of.i32 & _U32_MASK, args[3].of.i32 & _U32_MASK)
    except Exception:  # never let an exception cross into wasmtime-py (see module doc)
        errno = _EIO
    results[0].kind = 0  # WASMTIME_I32
    results[0].of.i32 = errno
    return 0  # no trap


def _fd_write(caller: Any, fd: int, iovs: int, iovs_len: int, nwritten: int) -> int:
    state = _state()
    if state is None or fd not in (1, 2):
        return _EBADF
    if state.overflow is not None:
        return _EIO
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_caller_export_get(caller, _MEMORY, len(_MEMORY), ctypes.byref(item)) \
            or cast(int, item.kind) != _EXTERN_MEMORY:  # an int at run time, c_ubyte to the stubs
        return _EINVAL
    if iovs_len > 1024:
        return _EINVAL
    ctx = ffi.wasmtime_caller_context(caller)
    memory = ctypes.byref(item.of.memory)
    base = ctypes.cast(ffi.wasmtime_memory_data(ctx, memory), ctypes.c_void_p).value or 0
    size = ffi.wasmtime_memory_data_size(ctx, memory)
    if iovs + _IOVEC.size * iovs_len > size or nwritten + _U32.size > size:
        return _EFAULT
    raw = ctypes.string_at(base + iovs, _IOVEC.size * iovs_len)
    if fd == 1:
        buf, cap = state.stdout, state.max_stdout_bytes
    else:
        buf, cap = state.stderr, state.max_stderr_bytes
    total = 0
    for i in range(iovs_len):
        ptr, length = _IOVEC.unpack_from(raw, _IOVEC.size * i)
        if not length:
            continue
        if ptr + length > size:
            return _EFAULT
        room = cap - len(buf)
        if length > room:
            buf += ctypes.string_at(base + ptr, max(room, 0))
            state.overflow = "stdout" if fd == 1 else "stderr"
            return _EIO
        buf += ctypes.string_at(base + ptr, length)
        total += length
    ctypes.memmove(base + nwritten, _U32.pack(total), _U32.size)
    if fd == 1 and state.on_stdout is not None:
        state.on_stdout()
    return _OK


def _now_ns(clock_id: int) -> int | None:
    if clock_id == 0:
        return time.time_ns()
    if clock_id == 1:
        return time.monotonic_ns()
    if clock_id in (2, 3):  # process / thread CPU time: this worker thread runs the guest
        return time.thread_time_ns()
    return None


def _clock_time_get(caller: wasmtime.Caller, clock_id: int, precision: int, out: int) -> int:
    out &= _U32_MASK  # wasmtime-py hands i32 pointers over signed: a pointer >= 2 GiB is not negative
    try:
        now = _now_ns(clock_id)
        if now is None:
            return _EINVAL
        mem = caller["memory"]
        assert isinstance(mem, wasmtime.Memory)
        mem.write(caller, struct.pack("<Q", now), out)
        return _OK
    except (IndexError, ValueError, KeyError, AssertionError):
        return _EFAULT
    except Exception:
        return _EIO


def _poll_oneoff(caller: wasmtime.Caller, subs: int, events: int, nsubs: int, nevents: int) -> int:
    subs, events, nevents = subs & _U32_MASK, events & _U32_MASK, nevents & _U32_MASK
    try:
        state = _state()
        mem = caller["memory"]
        if state is None or not isinstance(mem, wasmtime.Memory) or not 0 < nsubs <= 64:
            return _EINVAL
        raw = mem.read(caller, subs, subs + _SUB.size * nsubs)
        clocks: list[tuple[int, float]] = []  # (userdata, seconds to wait)
        ready: list[bytes] = []
        for i in range(nsubs):
            userdata, tag, clock_id, timeout, _prec, flags = _SUB.unpack_from(raw, _SUB.size * i)
            if tag == _TAG_CLOCK:
                now = _now_ns(clock_id)
                wait_ns = timeout - now if (flags & _ABSTIME and now is not None) else timeout
                clocks.append((userdata, max(wait_ns, 0) / 1e9))
            else:  # stdin is in memory and stdout is ours: fd subscriptions are always ready
                ready.append(_EVENT.pack(userdata, _OK, tag, 0, 0))
        if not ready and clocks:
            userdata, wait_s = min(clocks, key=lambda c: c[1])
            remaining = state.deadline - time.monotonic()
            if wait_s > 0:
                # Wake early if the sandbox closes; never sleep past the deadline.
                state.cancelled.wait(min(wait_s, max(remaining, 0.0)))  # wakes early if cancelled
            if state.stopped is None:
                state.stopped = state.stop_reason()  # a guest may end before the next tick
            ready.append(_EVENT.pack(userdata, _OK, _TAG_CLOCK, 0, 0))
        mem.write(caller, b"".join(ready), events)
        mem.write(caller, _U32.pack(len(ready)), nevents)
        return _OK
    except (IndexError, ValueError, KeyError, struct.error):
        return _EFAULT
    except Exception:
        return _EIO


def define_overrides(linker: wasmtime.Linker) -> None:
    """Shadow ``fd_write``, ``poll_oneoff`` and ``clock_time_get`` in a linker that has WASI."""
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    linker.allow_shadowing = True
    module, fd_write = WASI.encode(), b"fd_write"
    fd_write_type = wasmtime.FuncType([i32, i32, i32, i32], [i32])
    err = ffi.wasmtime_linker_define_func(linker.ptr(), module, len(module), fd_write, len(fd_write),
                                          fd_write_type.ptr(), _fd_write_raw, None, _no_finalizer)
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)
    funcs: list[tuple[str, list[Any], Any]] = [
        ("poll_oneoff", [i32, i32, i32, i32], _poll_oneoff),
        ("clock_time_get", [i32, i64, i32], _clock_time_get),
    ]
    for name, params, func in funcs:
        linker.define_func(WASI, name, wasmtime.FuncType(params, [i32]), func, access_caller=True)
    linker.allow_shadowing = False
