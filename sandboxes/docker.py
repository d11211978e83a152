"""The Docker sandbox: requests run in hardened containers, warm ones when possible.

Targets:
  * ``image`` — a prebuilt image whose entrypoint speaks the guest protocol. It must
    already exist locally: there is no registry to pull from.
  * ``python`` — an app directory. It is built into ``sluice/app:<hash>``, FROM the
    Python guest image (``images/python``), which is itself built on ``base_image``
    when missing or built from an older SDK.

Hardening (DESIGN §5) is in :func:`sandboxes._docker_oneshot.container_config`, for
one-shot and warm containers alike. Runtime ``runc`` (default) or ``runsc`` (gVisor;
register it with ``scripts/docker-engine.sh --gvisor``), per sandbox (``runtime=``)
or per target (``Target.isolation``).

Warm pools (``_docker_pool``): a target whose image runs the SDK shim (every python
target) is served by a container kept running for its function version and limits,
started on first use and reused until it wears out, fails, idles or is evicted. Each
call runs in a fresh fork of the container's trusted pid 1 (``_docker_serve``), which
then kills what the call left and empties its scratch dirs: calls share no state.
``Target.warm=False`` or ``PoolConfig(enabled=False)`` forces one container per call.

Example::

    sandbox = DockerSandbox()
    result = await sandbox.run(Target("python", "examples/shop"), request, Limits(timeout_s=10))
    await sandbox.close()

The event loop is never blocked: container calls go through an asyncio Engine API
client; only image builds (docker-py) run in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Literal

from sandboxes import _docker_images as images
from sandboxes._docker_api import EngineClient, EngineError
from sandboxes._docker_oneshot import LABEL, OneShotRunner
from sandboxes._docker_pool import POOL_LABEL, PoolConfig, Spec, WarmPool
from sandboxes._docker_serve import REUSE_FLAG
from sandboxes._docker_warm import serve_command
from sandboxes.base import Limits, Result, SandboxError, Target
from sluice.protocol import MAX_FRAME_BYTES

__all__ = ["POOL_LABEL", "DockerSandbox", "PoolConfig", "default_guest_image"]

RUNTIMES = ("runc", "runsc")


@dataclass(frozen=True)
class _Prepared:
    """An image ready to run: its tag, its id, and its warm command (``None``: one-shot only)."""

    tag: str
    image_id: str
    serve: list[str] | None


def default_guest_image() -> str:
    """``sluice/python-guest:<SDK version>``, what ``scripts/build-images.sh`` builds."""
    return f"sluice/python-guest:{images.sdk_version()}"


class DockerSandbox:
    """A :class:`~sandboxes.base.Sandbox` on a local Docker engine.

    ``runtime``: ``runc`` or ``runsc``, for targets whose ``isolation`` is ``None``.
    ``pool``: warm pool settings (default :class:`PoolConfig`). ``guest_image``: the Python guest image (default
    :func:`default_guest_image`; when it is the default, it is (re)built here as needed).
    ``base_image``: what the guest image is built on. ``client``: an optional docker-py
    ``DockerClient`` used for builds. ``docker_host``: a ``unix://`` URL (default
    ``$DOCKER_HOST`` or ``/var/run/docker.sock``).
    """

    name = "docker"

    def __init__(
        self,
        *,
        runtime: Literal["runc", "runsc"] = "runc",
        pool: PoolConfig | None = None,
        guest_image: str | None = None,
        base_image: str = images.DEFAULT_BASE_IMAGE,
        client: Any = None,
        docker_host: str | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise SandboxError(f"unknown docker runtime {runtime!r}: choose runc or runsc")
        self.runtime = runtime
        self.owns_guest_image = guest_image is None
        self.guest_image = guest_image or default_guest_image()
        self.base_image = base_image
        #: Labels: every container ``sluice=1``; one-shot ones ``sluice.sandbox=<id>``,
        #: warm ones ``sluice.pool=<id>``.
        self.id = uuid.uuid4().hex[:12]
        self._client = client
        self._own_client = client is None
        self._api = EngineClient(docker_host)
        self._runner = OneShotRunner(self._api, runtime=runtime, owner=self.id)
        self.pool = WarmPool(self._api, pool or PoolConfig(), owner=self.id)
        self._prepared: dict[tuple[str, str], _Prepared] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._checked_runtimes: set[str] = set()
        self._closed = False

    # --- the contract ---------------------------------------------------------

    async def prepare(self, target: Target) -> None:
        """Check or build ``target``'s image. A python app is re-hashed on every call,
        so a changed app is rebuilt and an unchanged one costs only the hash.

        Raises :class:`SandboxError`: engine unreachable, runtime not registered, image
        missing (with how to build it), app directory unusable, build failed.
        """
        await self._image_for(target, refresh=True)

    async def run(self, target: Target, request: bytes, limits: Limits) -> Result:
        """Run ``request`` for ``target`` (prepared first if needed).

        Warm when it can be (see the module docstring): ``Result.warm`` says whether an
        already running container served it. Otherwise a fresh container that is removed
        afterwards. ``Result.timings``: ``prepare_ms`` (finding the image), ``acquire_ms``
        (taking a warm container or starting one), ``run_ms`` (the guest's work), and for
        one-shot runs ``remove_ms``.

        A misbehaving guest yields ``Result(ok=False, error=...)`` (a warm container that
        misbehaved is replaced); host-side trouble raises :class:`SandboxError`.
        """
        started = time.monotonic()
        prepared = await self._image_for(target, refresh=False)
        runtime = await self._runtime_for(target)
        prepare_ms = (time.monotonic() - started) * 1000
        try:
            result: Result | None = None
            if target.warm and prepared.serve is not None and len(request) <= MAX_FRAME_BYTES:
                spec = Spec.of(prepared.image_id, target.env, runtime, limits, _warm_command(target, prepared.serve))
                result = await self.pool.run(spec, request, limits)
            if result is None:
                result = await self._runner.run(prepared.image_id, target.env, request, limits, runtime=runtime)
        except EngineError as exc:
            raise SandboxError(str(exc)) from None
        return replace(result, timings={"prepare_ms": prepare_ms, **result.timings},
                       duration_ms=result.duration_ms + prepare_ms)

    async def prewarm(self, target: Target, limits: Limits, count: int = 1) -> int:
        """Start up to ``count`` warm containers for ``target`` under ``limits`` ahead of calls.

        Returns how many were started: fewer when the key's cap or the memory budget is
        reached (nothing is evicted for it), 0 when the target cannot be warm. Raises
        :class:`SandboxError` as :meth:`prepare` does, or when a container cannot start.
        """
        prepared = await self._image_for(target, refresh=False)
        runtime = await self._runtime_for(target)
        if not target.warm or prepared.serve is None:
            return 0
        spec = Spec.of(prepared.image_id, target.env, runtime, limits, _warm_command(target, prepared.serve))
        try:
            return await self.pool.prewarm(spec, count)
        except EngineError as exc:
            raise SandboxError(str(exc)) from None

    def image_of(self, target: Target) -> str | None:
        """The image ``target`` last prepared as (``sluice/app:<hash>`` for an app), or ``None``."""
        prepared = self._prepared.get((target.kind, target.ref))
        return prepared.tag if prepared else None

    async def close(self) -> None:
        """Remove any container of this sandbox still around; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._runner.closing = True
        try:
            await self.pool.close()
            leftovers = {c["Id"] for c in await self._api.list_containers({"sluice.sandbox": self.id})}
            for cid in leftovers | self._runner.live:
                await self._api.remove(cid)
        except EngineError:
            pass  # engine gone: nothing left to remove through it
        finally:
            await self._api.close()
            if self._own_client and self._client is not None:
                await asyncio.to_thread(self._client.close)

    async def __aenter__(self) -> DockerSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- images ---------------------------------------------------------------

    async def _runtime_for(self, target: Target) -> str:
        runtime = target.isolation or self.runtime
        if runtime not in RUNTIMES:
            raise SandboxError(f"unknown isolation {runtime!r} for the docker sandbox: choose runc or runsc")
        if runtime not in self._checked_runtimes:
            try:
                await self._check_runtime(runtime)
            except EngineError as exc:
                raise SandboxError(str(exc)) from None
        return runtime

    async def _image_for(self, target: Target, *, refresh: bool) -> _Prepared:
        if self._closed:
            raise SandboxError("this docker sandbox is closed")
        if target.kind not in ("image", "python"):
            raise SandboxError(f"the docker sandbox runs 'image' and 'python' targets, not {target.kind!r}")
        key = (target.kind, target.ref)
        if not refresh and key in self._prepared:
            return self._prepared[key]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # two first calls of one target build once
            if not refresh and key in self._prepared:
                return self._prepared[key]
            try:
                await self._check_runtime(target.isolation or self.runtime)
                tag = target.ref if target.kind == "image" else await self._app_image(target.ref)
                found = await self._api.inspect_image(tag)
            except EngineError as exc:
                raise SandboxError(str(exc)) from None
            if found is None:
                raise SandboxError(
                    f"image {tag!r} not found on the local engine, and there is no registry to pull "
                    "from: build it here (docker build -t ... ; see images/README.md)"
                )
            prepared = _Prepared(tag, str(found["Id"]), serve_command(found.get("Config") or {}))
            self._prepared[key] = prepared
            return prepared

    async def _check_runtime(self, runtime: str) -> None:
        if runtime in self._checked_runtimes:
            return
        if runtime not in RUNTIMES:
            raise SandboxError(f"unknown isolation {runtime!r} for the docker sandbox: choose runc or runsc")
        info = await self._api.info()
        if runtime not in (info.get("Runtimes") or {}):
            hint = ""
            if runtime == "runsc":
                hint = " (register gVisor with scripts/docker-engine.sh --gvisor)"
            raise SandboxError(f"the Docker engine has no {runtime!r} runtime{hint}")
        self._checked_runtimes.add(runtime)

    async def _guest_image_id(self) -> str:
        found = await self._api.inspect_image(self.guest_image)
        if not self.owns_guest_image:
            if found is None:
                raise SandboxError(
                    f"guest image {self.guest_image!r} not found: build it with "
                    "scripts/build-images.sh (or pass guest_image=None to build it here)"
                )
            return str(found["Id"])
        want = images.sdk_hash()
        labels = ((found or {}).get("Config") or {}).get("Labels") or {}
        if found is not None and labels.get("sluice.guest-hash") == want:
            return str(found["Id"])
        if await self._api.inspect_image(self.base_image) is None:
            raise SandboxError(
                f"base image {self.base_image!r} not found and there is no registry: "
                "make it with images/base/bootstrap.sh"
            )
        context = await asyncio.to_thread(images.guest_context)
        return await self._build(
            context, self.guest_image, {"BASE": self.base_image}, {"sluice.guest-hash": want}
        )

    async def _app_image(self, ref: str) -> str:
        app_dir = images.check_app_dir(ref)
        guest_id = await self._guest_image_id()
        digest = await asyncio.to_thread(images.app_hash, app_dir, guest_id)
        tag = f"sluice/app:{digest}"
        if await self._api.inspect_image(tag) is None:
            context = await asyncio.to_thread(images.app_context, app_dir)
            await self._build(context, tag, {"GUEST": guest_id}, {"sluice.app-dir": str(app_dir)})
        return tag

    async def _build(
        self, context: bytes, tag: str, buildargs: dict[str, str], labels: dict[str, str]
    ) -> str:
        client = await self._docker_py()
        return await asyncio.to_thread(
            images.build, client, context, tag, buildargs=buildargs, labels={LABEL: "1", **labels}
        )

    async def _docker_py(self) -> Any:
        if self._client is None:
            import docker

            from sandboxes._docker_api import API_VERSION

            self._client = docker.DockerClient(
                base_url=f"unix://{self._api.socket}", version=API_VERSION, timeout=600
            )
        return self._client


def _warm_command(target: Target, serve: list[str]) -> list[str]:
    """The warm container's command: with ``Target.reuse`` (the app opted in), its guest
    answers every call itself instead of forking a clean child per call."""
    return [*serve, REUSE_FLAG] if target.reuse else serve  # _docker_serve takes it out of the shim's args
