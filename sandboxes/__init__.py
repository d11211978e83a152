"""Running one request in one isolated guest: see :mod:`sandboxes.base` for the contract."""

from sandboxes.base import Limits, Result, Sandbox, SandboxError, Target

__all__ = ["Limits", "Result", "Sandbox", "SandboxError", "Target", "open_sandbox"]

DRIVERS = ("wasm", "docker")


def open_sandbox(name: str, **options: object) -> Sandbox:
    """The sandbox driver called ``name`` (``wasm`` or ``docker``)."""
    if name == "wasm":
        from sandboxes.wasm import WasmSandbox

        return WasmSandbox(**options)  # type: ignore[arg-type]
    if name == "docker":
        from sandboxes.docker import DockerSandbox

        return DockerSandbox(**options)  # type: ignore[arg-type]
    raise SandboxError(f"unknown sandbox {name!r}: choose one of {', '.join(DRIVERS)}")
