"""The sandbox contract: run one request in one isolated guest, return its bytes.

A sandbox knows nothing of NATS, runs or history. It is handed a :class:`Target`
(what code to run), the request bytes (a guest-protocol request, see
``sluice.protocol``) and :class:`Limits`; it returns a :class:`Result` with the
guest's stdout (the response bytes) and stderr (its logs). A guest that misbehaves
(crashes, times out, exceeds a limit, floods output) never raises: the result says
what happened in ``error``. :class:`SandboxError` is for the host side failing
(image cannot be built, module cannot be compiled, engine not reachable).

Drivers are picked by name (see :func:`sandboxes.open_sandbox`): ``docker`` and ``wasm``.
Both pass ``tests/conformance/sandbox.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

MiB = 1024 * 1024


class SandboxError(Exception):
    """The host could not prepare or start a sandbox; the message says why."""


@dataclass(frozen=True)
class Target:
    """What to run.

    ``kind``:
      * ``python`` — ``ref`` is a directory holding a Python app (an ``app.py`` that
        creates a ``sluice.App``); the sandbox runs it under the SDK's guest shim
        (Docker: an image built from ``images/python``; WASM: CPython-on-WASI).
      * ``module`` — ``ref`` is a WASI command module (``.wasm`` or ``.wat``) that
        speaks the guest protocol itself (WASM only).
      * ``image`` — ``ref`` is a prebuilt container image whose entrypoint speaks the
        protocol (Docker only).
    ``env``: the only environment variables the guest sees.
    ``isolation``: a driver-specific choice of isolation for this target, e.g. Docker's
    ``"runsc"`` (gVisor) or ``"runc"``; ``None`` means the driver's own default.
    ``warm``: the target may run in a reused, pre-started guest (a warm container, or a
    pre-started WASM instance) instead of a fresh one per call; drivers decide how.
    ``reuse``: the app opted in (``sluice.App(..., reuse_instances=True)``) to one warm
    guest answering many of its calls in turn, its memory carrying over between them
    (WASM: a reused instance; Docker: the warm container answers without forking a clean
    child per call). Only with ``warm``; such guests never serve another target.
    """

    kind: Literal["python", "module", "image"]
    ref: str
    env: Mapping[str, str] = field(default_factory=dict)
    isolation: str | None = None
    warm: bool = True
    reuse: bool = False


@dataclass(frozen=True)
class Limits:
    """Caps on one guest run. Every field has a unit in its name."""

    memory_mb: int = 256
    cpus: float = 1.0
    pids: int = 64
    timeout_s: float = 300.0
    max_stdout_bytes: int = 8 * MiB
    max_stderr_bytes: int = 1 * MiB
    tmpfs_mb: int = 16


@dataclass(frozen=True)
class Result:
    """What one guest run produced.

    ``ok`` is true when the guest exited 0 within its limits; then ``stdout`` holds
    its response. Otherwise ``error`` is a one-line reason a user can act on, e.g.
    ``"timed out after 5.0 s"``, ``"out of memory (limit 256 MiB)"``,
    ``"stdout exceeded 8388608 bytes"``, ``"exited with code 3"``.
    ``stderr`` (capped) is kept as the step's logs either way.
    ``timings`` says where the time went, in ms, with at least ``acquire_ms`` (getting a
    guest: a cold start, or taking a warm one) and ``run_ms`` (the guest's work);
    ``warm`` is true when a pre-started guest served the call.
    """

    ok: bool
    stdout: bytes
    stderr: bytes
    exit_code: int | None
    error: str | None
    duration_ms: float
    timed_out: bool = False
    timings: Mapping[str, float] = field(default_factory=dict)
    warm: bool = False


@runtime_checkable
class Sandbox(Protocol):
    """A sandbox driver. Lifecycle: ``close()`` is safe to call twice."""

    name: str

    async def prepare(self, target: Target) -> None:
        """Make ``target`` ready to run (build, compile, cache). Idempotent.

        Raises :class:`SandboxError` with a clear message if it cannot be made ready.
        """
        ...

    async def run(self, target: Target, request: bytes, limits: Limits) -> Result:
        """Run one request in a fresh isolated guest (preparing first if needed)."""
        ...

    async def close(self) -> None: ...
