"""The guest shim: the process inside every sandbox that speaks protocol v1 for an app.

    python -m sluice.shim [--app-dir DIR] [--entry MODULE:ATTR] [--serve | --socket PATH]

- one-shot (default): the request is the whole of stdin, the response the whole of
  stdout, then exit.
- ``--serve``: framed requests on stdin, framed responses on stdout, one at a time,
  until stdin ends.
- ``--socket PATH``: listen on a unix socket at PATH; serve framed requests from one
  connection at a time, until killed.

The app is ``DIR/app.py`` (loaded as module ``sluice_user_app``, also reachable as
``app`` for sibling modules), or ``--entry module:attr`` imported with DIR first on
``sys.path``. It must hold exactly one ``sluice.App``.

Exit codes: 0 after a response was written (even one holding an ``error`` op) or at the
end of input; 2 for bad usage or a request that is not protocol v1 (one line on stderr
says why; nothing on stdout); 1 only if the shim itself crashed. The user's prints, at
import and during a call, go to stderr: stdout carries protocol bytes only.
"""

from __future__ import annotations

import io
import os
import sys

from sluice._app import App, error_response
from sluice._call import check_call
from sluice._errors import error_info
from sluice.protocol import MAX_FRAME_BYTES, ProtocolError, decode_request, frame, read_frame

TYPE_CHECKING = False  # not typing's: the guest must not pay for importing typing (see protocol.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

    _Loaded = tuple[App | None, dict[str, str] | None]

USAGE = "usage: python -m sluice.shim [--app-dir DIR] [--entry MODULE:ATTR] [--serve | --socket PATH]"
EXIT_OK, EXIT_CRASH, EXIT_BAD_INPUT = 0, 1, 2
#: How much of a one-shot request is read at a time (bytes); see ``_read_request``.
READ_CHUNK_BYTES = 64 * 1024


class LoadError(Exception):
    """The app directory or entry point does not hold exactly one ``sluice.App``."""


class _Options:
    __slots__ = ("app_dir", "entry", "serve", "socket")

    def __init__(self) -> None:
        self.app_dir = "."
        self.entry: str | None = None
        self.serve = False
        self.socket: str | None = None


def main(argv: list[str] | None = None) -> int:
    """Run the shim; returns the exit code (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print(f"{__doc__}\n{USAGE}")
        return EXIT_OK
    try:
        opts = _parse_args(args)
    except ValueError as exc:
        _say(f"{exc}\n{USAGE}")
        return EXIT_BAD_INPUT
    proto_in, proto_out = _claim_stdio()
    if not (opts.serve or opts.socket):
        return _one_shot(opts, proto_in, proto_out)
    loaded = _load(opts)
    if opts.socket:
        return _serve_socket(opts.socket, loaded)
    return EXIT_OK if _serve(proto_in, proto_out.write, proto_out.flush, loaded) else EXIT_BAD_INPUT


def _parse_args(argv: list[str]) -> _Options:
    opts = _Options()
    it = iter(argv)
    for arg in it:
        key, eq, inline = arg.partition("=")
        if key in ("--app-dir", "--entry", "--socket"):
            value = inline if eq else next(it, None)
            if not value:
                raise ValueError(f"{key} needs a value")
            setattr(opts, key[2:].replace("-", "_"), value)
        elif arg == "--serve":
            opts.serve = True
        else:
            raise ValueError(f"unknown argument {arg!r}")
    if opts.serve and opts.socket:
        raise ValueError("--serve and --socket are exclusive")
    if opts.entry is not None and ":" in opts.entry and not opts.entry.partition(":")[2]:
        raise ValueError(f"bad --entry {opts.entry!r}: use module or module:attr")
    return opts


def _claim_stdio() -> tuple[IO[bytes], IO[bytes]]:
    """Keep the real stdin/stdout for protocol bytes; give user code stderr and an empty stdin.

    Where the OS allows it, fd 1 itself is pointed at stderr, so even writes that bypass
    ``sys.stdout`` cannot corrupt the response. CPython on WASI has no ``dup2``; there
    ``sys.stdout`` and ``sys.__stdout__`` are redirected, but a raw ``os.write(1, ...)`` is not.
    """
    proto_in: IO[bytes] = sys.stdin.buffer
    proto_out: IO[bytes] = sys.stdout.buffer
    sys.stdout.flush()
    if hasattr(os, "dup2"):  # CPython on WASI has dup but not dup2
        try:
            fd = os.dup(1)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                os.dup2(2, 1)
                proto_out = open(fd, "wb")  # noqa: SIM115 - lives as long as the process
            except OSError:
                os.close(fd)
    # Keep the original wrappers alive: collecting one would close the stream under us.
    _originals.extend((sys.stdin, sys.stdout, sys.__stdin__, sys.__stdout__))
    sys.stdout = sys.stderr
    sys.stdin = io.StringIO("")
    # The __std*__ originals too: where fd 1 could not be moved (WASI), they would still write it.
    setattr(sys, "__stdout__", sys.stderr)  # noqa: B010 - typeshed declares them Final
    setattr(sys, "__stdin__", sys.stdin)  # noqa: B010
    return proto_in, proto_out


_originals: list[object] = []


def _load(opts: _Options) -> _Loaded:
    """The app, or the error map saying why it could not be loaded (also written to stderr)."""
    try:
        return _load_app(opts.app_dir, opts.entry), None
    except KeyboardInterrupt:
        raise
    except LoadError as exc:
        err = {"name": "AppLoadError", "message": f"failed to load app: {exc}"}
    except BaseException as exc:  # the user's module raised (SyntaxError, ImportError, SystemExit...)
        info = error_info(exc)
        where = opts.entry or os.path.join(opts.app_dir, "app.py")
        err = {"name": "AppLoadError", "stack": info.get("stack", ""),
               "message": f"failed to load app: {where}: {info['name']}: {info['message']}"}
    _say(err["message"])
    return None, err


def _load_app(app_dir: str, entry: str | None) -> App:
    app_dir = os.path.abspath(app_dir)
    if not os.path.isdir(app_dir):
        raise LoadError(f"app directory {app_dir} does not exist")
    sys.path.insert(0, app_dir)
    if entry:
        import importlib

        mod_name, _, attr = entry.partition(":")
        module = importlib.import_module(mod_name)
        if not attr:
            return _find_app(module, mod_name)
        obj = getattr(module, attr, None)
        if not isinstance(obj, App):
            raise LoadError(f"{entry} is {type(obj).__name__}, not a sluice.App")
        return obj
    path = os.path.join(app_dir, "app.py")
    if not os.path.isfile(path):
        raise LoadError(f"{path} not found (an app directory needs app.py, or pass --entry module:attr)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("sluice_user_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sluice_user_app"] = module
    # Sibling modules may `from app import ...`; give them this module, not a second copy.
    sys.modules.setdefault("app", module)
    spec.loader.exec_module(module)
    return _find_app(module, path)


def _find_app(module: Any, where: str) -> App:
    apps: dict[int, tuple[str, App]] = {}
    for name, value in vars(module).items():
        if isinstance(value, App):
            apps.setdefault(id(value), (name, value))
    if len(apps) == 1:
        return next(iter(apps.values()))[1]
    if not apps:
        raise LoadError(f"{where} defines no sluice.App at module level (add: app = sluice.App(\"my-app\"))")
    names = ", ".join(name for name, _ in apps.values())
    raise LoadError(f"{where} defines {len(apps)} sluice.App instances ({names}); pass --entry module:NAME")


def _decode(data: bytes) -> dict[str, Any]:
    """A checked request; raises ``ProtocolError`` naming what is wrong."""
    request: dict[str, Any] = decode_request(data)  # type: ignore[assignment]
    if request["kind"] == "call":
        check_call(request)
    return request


def _respond(loaded: _Loaded, request: dict[str, Any]) -> bytes:
    """The response bytes for one decoded request; raises ``ProtocolError`` for a malformed one."""
    app, load_error = loaded
    if app is None:
        assert load_error is not None
        return error_response(load_error["name"], load_error["message"], load_error.get("stack", ""))
    body = app.respond(request)
    if len(body) > MAX_FRAME_BYTES:
        return error_response("OutputTooLarge",
                              f"the response is {len(body)} bytes; the limit is {MAX_FRAME_BYTES}")
    return body


def _read_request(stream: IO[bytes]) -> bytes | None:
    """All of ``stream`` up to EOF, or ``None`` once it passes ``MAX_FRAME_BYTES``.

    Read in ``READ_CHUNK_BYTES`` pieces, never ``read(MAX_FRAME_BYTES + 1)``: CPython
    allocates a read's whole size up front, and under WASM those 64 MiB are real guest
    memory, which would fail every call given less. At most MAX_FRAME_BYTES / chunk + 2 reads.
    """
    buf = bytearray()
    while len(buf) <= MAX_FRAME_BYTES:
        chunk = stream.read(READ_CHUNK_BYTES)
        if not chunk:
            return bytes(buf)
        buf += chunk
    return None


def _one_shot(opts: _Options, proto_in: IO[bytes], proto_out: IO[bytes]) -> int:
    data = _read_request(proto_in)
    if data is None:
        _say(f"bad request: over {MAX_FRAME_BYTES} bytes")
        return EXIT_BAD_INPUT
    try:
        request = _decode(data)  # garbage is refused before any user code runs
        body = _respond(_load(opts), request)
    except ProtocolError as exc:
        _say(f"bad request: {exc}")
        return EXIT_BAD_INPUT
    proto_out.write(body)
    proto_out.flush()
    return EXIT_OK


def _serve(read: IO[bytes], write: Callable[[bytes], Any], flush: Callable[[], Any], loaded: _Loaded) -> bool:
    """Answer framed requests until a clean end of input (True) or a bad frame (False)."""
    while True:
        try:
            data = read_frame(read)
            if data is None:
                return True
            body = _respond(loaded, _decode(data))
        except ProtocolError as exc:
            _say(f"bad request: {exc}; closing")
            return False
        write(frame(body))
        flush()


def _serve_socket(path: str, loaded: _Loaded) -> int:
    import socket

    if os.path.exists(path):  # left by an earlier shim in this sandbox
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    _say(f"listening on {path}")
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as reader:
            try:
                _serve(reader, conn.sendall, lambda: None, loaded)
            except OSError as exc:  # the host went away mid-frame; wait for the next one
                _say(f"connection lost: {exc}")


def _say(line: str) -> None:
    sys.stderr.write(f"sluice shim: {line}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
