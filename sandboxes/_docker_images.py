"""Images for the Docker sandbox: the Python guest image and per-app images.

* The guest image (``sluice/python-guest:<version>``) is ``images/python/Dockerfile``
  built on a base image with the SDK copied in. It carries the label
  ``sluice.guest-hash`` (sha256 of the Dockerfile and the SDK's ``.py`` files), so a
  guest image built from an older SDK is noticed and rebuilt.
* An app image is FROM the guest image with the app directory at ``/app``, tagged
  ``sluice/app:<hash>`` where the hash covers the app's files and the guest image id:
  an unchanged app on an unchanged SDK is never rebuilt.

Builds go through docker-py (the design card's package) in a worker thread, with
``network_mode="none"``: there is no registry and a build must not need one. This
module imports only the standard library at the top, so ``scripts/build-images.sh``
can use it with any ``python3``.

Failure modes: :class:`~sandboxes.base.SandboxError` with the build log's last lines
when a build fails; with the offending path when an app directory is unusable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandboxes.base import SandboxError

REPO_ROOT = Path(__file__).resolve().parents[1]
GUEST_DOCKERFILE = REPO_ROOT / "images" / "python" / "Dockerfile"
DEFAULT_BASE_IMAGE = "sluice/base:bookworm"

#: Largest app directory copied into an image (bytes, files summed).
MAX_APP_BYTES = 64 * 1024 * 1024
#: Most files an app directory may hold.
MAX_APP_FILES = 5_000
#: Directories never copied into an app image.
SKIP_DIRS = frozenset({"__pycache__", ".git", ".hg", ".venv", "venv", ".mypy_cache", ".pytest_cache",
                       ".ruff_cache", "node_modules"})

APP_DOCKERFILE = b"""\
ARG GUEST
FROM ${GUEST}
COPY app/ /app/
"""


def sdk_dir() -> Path:
    """The SDK package directory (``sluice/``), found without importing it."""
    spec = importlib.util.find_spec("sluice")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxError("cannot find the sluice SDK package to copy into the guest image")
    return Path(next(iter(spec.submodule_search_locations)))


def sdk_version() -> str:
    """The SDK's version: ``__version__`` in ``sluice/__init__.py``, else pyproject's, else ``dev``."""
    pattern = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.M)
    init = sdk_dir() / "__init__.py"
    if init.exists() and (m := pattern.search(init.read_text())):
        return m.group(1)
    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.exists() and (m := re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.M)):
        return m.group(1)
    return "dev"


def _sdk_files() -> list[tuple[str, Path]]:
    root = sdk_dir()
    return sorted(
        (p.relative_to(root).as_posix(), p)
        for p in root.rglob("*.py")
        if "__pycache__" not in p.parts
    )


def sdk_hash() -> str:
    """sha256 (hex, 16 chars) of the guest Dockerfile and every SDK ``.py`` file."""
    h = hashlib.sha256()
    h.update(GUEST_DOCKERFILE.read_bytes() if GUEST_DOCKERFILE.exists() else b"")
    for rel, path in _sdk_files():
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def guest_context() -> bytes:
    """A tar build context: the guest Dockerfile and the SDK as ``sluice/``."""
    if not GUEST_DOCKERFILE.exists():
        raise SandboxError(
            f"{GUEST_DOCKERFILE} not found: build the guest image from a source checkout "
            "with scripts/build-images.sh"
        )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", GUEST_DOCKERFILE.read_bytes())
        for rel, path in _sdk_files():
            _add_bytes(tar, f"sluice/{rel}", path.read_bytes())
    return buf.getvalue()


def _app_files(app_dir: Path) -> Iterator[tuple[str, Path]]:
    """Files and symlinks under ``app_dir`` (relative posix path, path), sorted, bounded."""
    count = 0
    total = 0
    for path in sorted(app_dir.rglob("*")):
        rel = path.relative_to(app_dir)
        if any(part in SKIP_DIRS for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_dir() and not path.is_symlink():
            continue
        if not (path.is_file() or path.is_symlink()):
            continue  # sockets, fifos, devices: never part of an app
        count += 1
        if count > MAX_APP_FILES:
            raise SandboxError(f"app directory {app_dir} has more than {MAX_APP_FILES} files")
        if not path.is_symlink():
            total += path.stat().st_size
            if total > MAX_APP_BYTES:
                raise SandboxError(f"app directory {app_dir} is larger than {MAX_APP_BYTES} bytes")
        yield rel.as_posix(), path


def check_app_dir(ref: str) -> Path:
    """The app directory ``ref`` resolved; :class:`SandboxError` unless it holds an ``app.py``."""
    app_dir = Path(ref).expanduser().resolve()
    if not app_dir.is_dir():
        raise SandboxError(f"python target {ref!r} is not a directory")
    if not (app_dir / "app.py").is_file():
        raise SandboxError(f"python target {ref!r} has no app.py (it must create a sluice.App)")
    return app_dir


def app_hash(app_dir: Path, guest_image_id: str) -> str:
    """sha256 (hex, 16 chars) of the app's files (paths, modes, contents) and the guest image id."""
    h = hashlib.sha256(guest_image_id.encode() + b"\0")
    for rel, path in _app_files(app_dir):
        if path.is_symlink():
            h.update(b"L" + rel.encode() + b"\0" + str(path.readlink()).encode() + b"\0")
        else:
            h.update(b"F" + rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def app_context(app_dir: Path) -> bytes:
    """A tar build context: a two-line Dockerfile and the app directory as ``app/``.

    Symlinks stay links (never followed), so an app cannot copy host files into its
    image; files become root-owned and world-readable, directories world-searchable,
    so the guest user can read but not change its code.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", APP_DOCKERFILE)
        for rel, path in _app_files(app_dir):
            if path.is_symlink():
                info = tarfile.TarInfo(f"app/{rel}")
                info.type = tarfile.SYMTYPE
                info.linkname = str(path.readlink())
                tar.addfile(info)
            else:
                _add_bytes(tar, f"app/{rel}", path.read_bytes())
    return buf.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def build(
    client: Any, context: bytes, tag: str, *, buildargs: dict[str, str], labels: dict[str, str]
) -> str:
    """Build ``context`` (a tar) as ``tag`` with docker-py; returns the image id. Blocking.

    Raises :class:`SandboxError` carrying the last lines of the build log on failure.
    """
    log: list[str] = []
    try:
        stream = client.api.build(
            fileobj=io.BytesIO(context), custom_context=True, tag=tag, buildargs=buildargs,
            labels=labels, network_mode="none", rm=True, forcerm=True, decode=True, pull=False,
        )
        for chunk in stream:
            if "stream" in chunk:
                log.extend(line for line in str(chunk["stream"]).splitlines() if line.strip())
            if "error" in chunk:
                log.append(str(chunk["error"]).strip())
                raise SandboxError(f"building image {tag} failed:\n" + "\n".join(log[-12:]))
    except SandboxError:
        raise
    except Exception as exc:  # docker.errors.APIError, BuildError, connection errors
        raise SandboxError(f"building image {tag} failed: {exc}") from None
    return str(client.api.inspect_image(tag)["Id"])
