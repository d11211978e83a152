"""One wasmtime engine: compiled-module caches, the epoch ticker, and running one guest.

Reused across calls: the :class:`wasmtime.Engine`, one :class:`wasmtime.Linker` (WASI
plus the overrides in :mod:`sandboxes._wasm_host`), and an ``InstancePre`` per module.
Fresh per call: the ``Store``, its WASI context and the instance, so no state survives
from one call to the next.

CPU time is bounded inside the engine: a ticker thread bumps the engine's epoch every
:data:`TICK_S` seconds while any call runs, which interrupts every running guest, even
in a tight loop that never calls the host; see :mod:`sandboxes._wasm_host` for what
decides whether it goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import wasmtime

from sandboxes import _wasm_host
from sandboxes.base import SandboxError

#: Epoch tick (seconds): the resolution of timeouts.
TICK_S = 0.01

WASMTIME_VERSION = version("wasmtime")


@dataclass(frozen=True)
class GuestSpec:
    """How to start one guest: its WASI view of the world (all paths host-side absolute)."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    preopens: tuple[tuple[str, str], ...] = ()  # (host dir, guest dir), always read-only


class _Ticker:
    """Bumps the engine epoch every tick while at least one call is running."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="sluice-wasm-epoch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._active == 0 and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            time.sleep(TICK_S)
            self._engine.increment_epoch()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with self._cond:
            self._active += 1
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=1.0)


class WasmEngine:
    """A configured engine plus its caches. Thread-safe; ``close()`` is idempotent.

    ``cache_dir`` holds compiled modules (``*.cwasm``); it must be private to this
    user, since a compiled module is native code that is loaded without checks.
    ``fuel``: if set, each call may execute about that many wasm instructions.
    """

    def __init__(self, cache_dir: Path, fuel: int | None = None) -> None:
        self.cache_dir = cache_dir
        self.fuel = fuel
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.consume_fuel = fuel is not None
        self.engine = wasmtime.Engine(config)
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        _wasm_host.define_overrides(self.linker)
        self._flags = f"epoch{'-fuel' if fuel is not None else ''}"
        self._lock = threading.Lock()
        self._pres: dict[str, wasmtime.InstancePre] = {}  # sha256 of source -> ready to instantiate
        self._ticker = _Ticker(self.engine)

    # --- modules -----------------------------------------------------------------

    def cache_path(self, digest: str) -> Path:
        """Where the compiled form of the module with sha256 ``digest`` is kept."""
        return self.cache_dir / "modules" / f"{digest}-wasmtime{WASMTIME_VERSION}-{self._flags}.cwasm"

    def load(
        self, source: bytes | Callable[[], bytes], name: str, digest: str | None = None
    ) -> wasmtime.InstancePre:
        """A module ready to instantiate, from memory, the disk cache, or compiled now.

        ``source`` is a wasm binary or WAT text, or a function returning it (then called
        only to compile, and ``digest``, its sha256, is required); ``name`` names it in
        errors. Raises :class:`SandboxError` if it does not compile or needs imports
        other than WASI.
        """
        if digest is None:
            assert isinstance(source, bytes), "a lazy source needs its digest"
            digest = hashlib.sha256(source).hexdigest()
        with self._lock:
            pre = self._pres.get(digest)
        if pre is not None:
            return pre
        module = self._deserialize(self.cache_path(digest))
        if module is None:
            module = self._compile(source if isinstance(source, bytes) else source(), name)
            self._store(module, self.cache_path(digest))
        try:
            pre = self.linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise SandboxError(f"{name}: cannot link: {_first_line(exc)}") from None
        with self._lock:
            self._pres[digest] = pre
        return pre

    def _deserialize(self, path: Path) -> wasmtime.Module | None:
        if not path.is_file():
            return None
        try:
            return wasmtime.Module.deserialize_file(self.engine, str(path))
        except wasmtime.WasmtimeError:  # stale or corrupt: compile again
            path.unlink(missing_ok=True)
            return None

    def _compile(self, source: bytes, name: str) -> wasmtime.Module:
        try:
            if not source.startswith(b"\0asm"):
                return wasmtime.Module(self.engine, source.decode("utf-8"))
            return wasmtime.Module(self.engine, source)
        except UnicodeDecodeError:
            raise SandboxError(f"{name}: neither a wasm binary nor WAT text") from None
        except wasmtime.WasmtimeError as exc:
            raise SandboxError(f"{name}: does not compile: {_first_line(exc)}") from None

    def _store(self, module: wasmtime.Module, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(module.serialize())
            os.replace(tmp, path)  # atomic: concurrent writers of the same key are harmless
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def running(self) -> contextlib.AbstractContextManager[None]:
        """Keep the epoch ticking while the block runs (one guest call)."""
        return self._ticker.running()

    def close(self) -> None:
        """Stop the ticker (after the last call) and drop the in-memory cache. Idempotent."""
        self._ticker.close()
        with self._lock:
            self._pres.clear()


def _first_line(exc: object) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
