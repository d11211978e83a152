"""Pre-started, single-use CPython instances: start-up paid before the call, not during it.

A :class:`Prestarted` guest is a fresh store and instance of CPython for WASI running
the shim in ``--serve`` mode on a thread of its own. It starts the interpreter, imports
the SDK, msgpack and the user's app, then blocks reading stdin, which is a pipe only
this host holds the write end of. A call *hands it over*: the call's limits are put in
place, then one framed request is written and the pipe closed. The guest answers with
one frame, sees end of input, and is stopped; it never serves a second request, so no
state crosses calls. This is the "equivalent of pre-initialisation" that keeps a fresh
instance per call (see docs/sandboxes-wasm.md for why not a wizer snapshot).

Deadlines stay inside the engine: while importing, the guest runs under a start-up
deadline (the ``timeout_s`` of the call that asked for it) enforced by the epoch
callback like any call; blocked idle in the pipe read it runs no wasm, so idle time
never counts; at hand-over its :class:`CallState` gets ``now + timeout_s`` of the call
before the request is written. Output caps are the call's (stdout's plus the 4-byte
frame header, which is stripped again); a guest whose start-up already wrote more than
a call's caps allow is not handed that call. The memory cap is fixed at store creation,
so instances are pooled per memory limit (see :mod:`sandboxes._wasm_pool`).

The call is answered as soon as the guest's stdout holds one whole frame; the guest is
then stopped at the next epoch tick instead of running interpreter shut-down (about
15 ms). Output written after the answer (atexit handlers) is dropped. A guest that
ends without answering (exit code, trap, timeout, cap) is reported exactly as a cold
run would be. Linux only: the guest's stdin is opened as ``/proc/self/fd/N``.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import os
import threading
import time
from collections.abc import Callable, Hashable

import wasmtime

from sandboxes import _wasm_host
from sandboxes._wasm_engine import GuestSpec, WasmEngine
from sandboxes._wasm_run import Outcome, classify, new_store, start_guest
from sandboxes.base import Limits
from sluice.protocol import frame

#: Pipe size asked for (bytes); requests up to the size granted go to pre-started guests.
PIPE_BYTES = 1024 * 1024
_HEADER = 4  # the frame's length prefix


class Prestarted:
    """One CPython instance, started on its own thread, waiting for its one request.

    ``on_exit(self, outcome, served)`` is called on the guest's thread once it has ended,
    with ``served`` false if it ended while not serving a call (a failed start-up, or
    :meth:`stop`), in which case ``outcome`` answered nobody.

    ``max_calls`` above 1 is the explicit opt-in to *reuse*: the guest then answers up to
    that many requests in turn, one at a time, keeping whatever state the app keeps
    between them (see ``WasmSandbox(reuse_instances_for=...)``). Each call still gets
    its own deadline from its hand-over, its own output caps and its own stdout/stderr.
    """

    def __init__(
        self,
        engine: WasmEngine,
        pre: wasmtime.InstancePre,
        spec: GuestSpec,
        limits: Limits,
        on_exit: Callable[[Prestarted, Outcome, bool], None],
        max_calls: int = 1,
        key: Hashable = None,
    ) -> None:
        self.limits = limits
        self.max_calls = max_calls
        self.calls = 0  # requests handed over so far
        self.key = key  # what its pool files it under
        self.born = time.perf_counter()
        self.state = _wasm_host.CallState(
            max_stdout_bytes=limits.max_stdout_bytes + _HEADER,
            max_stderr_bytes=limits.max_stderr_bytes,
            deadline=time.monotonic() + limits.timeout_s,  # for start-up; replaced at hand-over
            cancelled=threading.Event(),
        )
        self.state.on_stdout = self._maybe_answered
        self._engine, self._pre, self._spec = engine, pre, spec
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._busy = False  # serving a call: handed a request, not answered yet
        self._finished = False
        self._handed_at = 0.0
        self._call_limits = limits
        self._answer: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
        read_fd, self._write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                fcntl.fcntl(self._write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except OSError:  # above /proc/sys/fs/pipe-max-size: keep the default
                pass
            self.capacity = fcntl.fcntl(self._write_fd, fcntl.F_GETPIPE_SZ)
            os.set_blocking(self._write_fd, False)
            self.thread = threading.Thread(target=self._main, args=(read_fd,), name="sluice-wasm-prestart",
                                           daemon=True)
            self.thread.start()
        except BaseException:
            os.close(read_fd)
            self._close_writer()
            raise

    # --- the calling side ---------------------------------------------------------

    def hand_over(self, request: bytes, limits: Limits) -> concurrent.futures.Future[Outcome] | None:
        """Give this guest a request under ``limits``; ``None`` if it cannot take it.

        It cannot when it ended, was stopped, is serving a call or has served its
        ``max_calls``, or the framed request does not fit in its pipe. Never blocks: the
        request is written without waiting.
        """
        data = frame(request)
        if len(data) > self.capacity:
            return None
        state = self.state
        with self._lock:  # the writer is closed under this lock too: never write to a closed fd
            if not self._can_take():
                return None
            if self.calls == 0 and (len(state.stdout) > limits.max_stdout_bytes + _HEADER
                                    or len(state.stderr) > limits.max_stderr_bytes):
                return None  # its start-up already wrote more than this call may: a cold run says so
            self._busy = True
            self.calls += 1
            self._handed_at = time.perf_counter()
            self._call_limits = limits
            answer: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
            self._answer = answer
            if self.calls > 1:  # a reused guest: this call's output starts empty
                state.stdout, state.stderr, state.overflow = bytearray(), bytearray(), None
            state.max_stdout_bytes = limits.max_stdout_bytes + _HEADER
            state.max_stderr_bytes = limits.max_stderr_bytes
            state.deadline = time.monotonic() + limits.timeout_s  # armed now, before the request is out
            try:
                written = os.write(self._write_fd, data)  # an empty pipe of this capacity takes it whole
            except OSError:  # the guest is gone: its own ending (already on its way) answers the call
                written = len(data)
            if written < len(data):
                self.max_calls = self.calls  # the rest is written blocking, then the pipe closed
        if written < len(data):
            threading.Thread(target=self._write_rest, args=(data[written:],), daemon=True).start()
        elif self.calls >= self.max_calls:
            self._close_writer()  # end of input after its last frame
        return answer

    @property
    def reusable(self) -> bool:
        """Whether it can take another request now (a reuse opt-in guest that is idle)."""
        with self._lock:
            return self.calls > 0 and self._can_take()

    def _can_take(self) -> bool:
        state = self.state
        return not (self._finished or self._busy or self.calls >= self.max_calls
                    or state.stopped is not None or state.cancelled.is_set() or self._write_fd < 0)

    def stop(self) -> None:
        """End this guest: an idle one sees end of input, a busy one stops at its next tick."""
        self.state.cancelled.set()
        self._close_writer()

    @property
    def finished(self) -> bool:
        """Its guest has ended (its thread is about to)."""
        return self._finished

    @property
    def busy(self) -> bool:
        """Serving a call (its run owns it: the sandbox cancels it through its ``cancelled``)."""
        return self._busy

    @property
    def idle_ms(self) -> float:
        """How long ago it was started (ms): its start-up, then time spent waiting."""
        return (time.perf_counter() - self.born) * 1000

    # --- the guest's thread -------------------------------------------------------

    def _main(self, read_fd: int) -> None:
        state = self.state
        _wasm_host.begin_call(state)
        try:
            outcome = self._run(read_fd)
        except BaseException as exc:  # a host-side failure: this guest never started
            outcome = Outcome(b"", bytes(state.stderr), None, f"cannot start: {exc}", False, 0.0)
        finally:
            _wasm_host.end_call()
        with self._lock:
            self._finished = True
            busy = self._busy
        if busy:
            self._settle(self._answer, outcome)
        else:
            self._close_writer()
        self._on_exit(self, outcome, busy)

    def _run(self, read_fd: int) -> Outcome:
        try:
            store = new_store(self._engine, self._spec, self.limits, f"/proc/self/fd/{read_fd}")
        finally:
            os.close(read_fd)  # the guest's stdin holds its own descriptor of the pipe
        with self._engine.running():
            exit_code, failure, instance, _ = start_guest(self._pre, store)
        limits = self._call_limits
        error = classify(self._engine, self.state, exit_code, failure, instance, store, limits)
        ended = time.perf_counter()
        started = self._handed_at or ended
        stdout = bytes(self.state.stdout[_HEADER:])  # the frame header; after a cap, at most the cap
        return Outcome(
            stdout=stdout,
            stderr=bytes(self.state.stderr),
            exit_code=exit_code if error is None or exit_code else None,
            error=error,
            timed_out=self.state.stopped == "timeout",
            duration_ms=(ended - started) * 1000,
            started=started,
            ended=ended,
        )

    def _maybe_answered(self) -> None:
        """After each stdout write: once one whole frame is out, answer the call (never raises)."""
        try:
            state = self.state
            out = state.stdout
            if not self._busy or len(out) < _HEADER:
                return
            size = int.from_bytes(out[:_HEADER], "big")
            if len(out) < _HEADER + size:
                return
            ended = time.perf_counter()
            outcome = Outcome(
                stdout=bytes(out[_HEADER:_HEADER + size]),
                stderr=bytes(state.stderr),
                exit_code=0,
                error=None,
                timed_out=False,
                duration_ms=(ended - self._handed_at) * 1000,
                started=self._handed_at,
                ended=ended,
            )
            with self._lock:
                answer = self._answer
                self._busy = False
                if self.calls >= self.max_calls:
                    state.answered = True  # no need for interpreter shut-down: stop at the next tick
                else:  # reused: a fresh budget to get back to its read; the next hand-over resets it
                    state.deadline = time.monotonic() + self._call_limits.timeout_s
            self._settle(answer, outcome)
        except Exception:  # the guest's own ending answers the call instead
            pass

    @staticmethod
    def _settle(answer: concurrent.futures.Future[Outcome], outcome: Outcome) -> None:
        try:
            answer.set_result(outcome)
        except concurrent.futures.InvalidStateError:  # answered already; this is the guest's ending
            pass

    def _write_rest(self, rest: bytes) -> None:
        """Write what did not fit at once, blocking (never expected: requests fit the pipe)."""
        with self._lock:
            fd, self._write_fd = self._write_fd, -1  # ours now: stop() cannot close it under us
        try:
            os.set_blocking(fd, True)
            view = memoryview(rest)
            while view:  # each write takes at least one byte or raises
                view = view[os.write(fd, view):]
        except OSError:  # the guest stopped (deadline, cancel): it answers for itself
            pass
        finally:
            os.close(fd)

    def _close_writer(self) -> None:
        with self._lock:
            fd, self._write_fd = self._write_fd, -1
        if fd >= 0:
            os.close(fd)
