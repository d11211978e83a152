"""Warm pools: containers kept running per function version and limits, reused per call.

Order of preference per call (OpenWhisk's): an idle warm container of the same key;
else a new container started now (cold), which then stays in the pool; else, when the
key is at ``max_per_key`` or the memory budget is spent even after evicting idle
containers, ``None`` — the caller runs a one-shot container instead of waiting.

A pool key is (image id, env, runtime, memory, cpus, pids, tmpfs): everything that
shapes a container. Per-call limits (timeout, output caps) are not part of it.

Retirement: after ``max_calls`` calls (replaced in the background, since the key is
busy), after any failed call (timeout, crash, cap, out of memory), after ``idle_s``
without a call (the reaper), and to make room in the memory budget (least recently
used idle first). The budget counts ``limits.memory_mb`` of every live container:
starting, idle and busy.

Every pooled container carries the labels ``sluice=1`` and ``sluice.pool=<owner>``;
:meth:`WarmPool.close` removes them all, and any left by a crash can be found by label.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sandboxes._docker_api import EngineClient, EngineError
from sandboxes._docker_oneshot import container_config
from sandboxes._docker_stdio import SocketUnavailable, socket_base
from sandboxes._docker_warm import WarmContainer
from sandboxes.base import Limits, Result, SandboxError

#: The label naming the pool that owns a warm container.
POOL_LABEL = "sluice.pool"
#: Rounds of waiting for background tasks at close (a task may spawn at most one more).
_CLOSE_ROUNDS = 5
#: Polls (50 ms apart) waiting for container starts in flight at close: 30 s at most.
_CLOSE_START_POLLS = 600


def half_of_physical_memory_mb() -> int:
    """Half the host's RAM in MiB (at least 1024); 8192 where the OS won't say."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8192
    return max(1024, total // (2 * 1024 * 1024))


@dataclass(frozen=True)
class PoolConfig:
    """Warm pool settings; every field has its unit in its name.

    ``max_per_key``: live containers per (function version, limits) key.
    ``max_total_memory_mb``: budget across all keys, summing each container's
    ``limits.memory_mb`` (a cap, not what a container uses: an idle Python guest uses
    about 20 MiB); default half the host's physical memory, at least 1024.
    ``idle_s``: an idle container is removed after this long.
    ``max_calls``: a container is replaced after serving this many calls.
    ``prewarm``: idle containers to keep ready per key once it has been used
    (started in the background, never by evicting another key's containers).
    ``reap_interval_s``: how often the reaper looks for expired or dead containers.
    ``enabled``: false makes every call one-shot.
    ``unix_socket``: under runc, a container's stdio travels over a unix socket bound
    into it rather than the Engine's attach stream (``_docker_stdio``; about a third
    less machine CPU per warm call in a burst); runsc always attaches.
    """

    max_per_key: int = 32
    max_total_memory_mb: int = field(default_factory=lambda: half_of_physical_memory_mb())
    idle_s: float = 120.0
    max_calls: int = 1000
    prewarm: int = 0
    reap_interval_s: float = 2.0
    enabled: bool = True
    unix_socket: bool = True

    def __post_init__(self) -> None:
        if self.max_per_key < 1 or self.max_total_memory_mb < 1 or self.max_calls < 1:
            raise SandboxError(f"pool sizes must be at least 1: {self}")
        if self.idle_s <= 0 or self.reap_interval_s <= 0:
            raise SandboxError(f"pool times must be positive: {self}")
        if self.prewarm < 0 or self.prewarm > self.max_per_key:
            raise SandboxError(f"prewarm must be between 0 and max_per_key: {self}")


@dataclass(frozen=True)
class Spec:
    """How to start a container for one key."""

    image: str
    env: tuple[tuple[str, str], ...]
    runtime: str
    limits: Limits
    command: tuple[str, ...]

    @property
    def key(self) -> tuple[Any, ...]:
        lim = self.limits
        return (self.image, self.env, self.runtime, lim.memory_mb, lim.cpus, lim.pids, lim.tmpfs_mb, self.command)

    @staticmethod
    def of(image: str, env: Mapping[str, str], runtime: str, limits: Limits, command: list[str]) -> Spec:
        # Per-call limits are normalised away so calls differing only in them share containers.
        shape = replace(Limits(), memory_mb=limits.memory_mb, cpus=limits.cpus, pids=limits.pids,
                        tmpfs_mb=limits.tmpfs_mb)
        return Spec(image, tuple(sorted(env.items())), runtime, shape, tuple(command))


class WarmPool:
    """All warm containers of one sandbox. Create and use inside one event loop."""

    def __init__(self, api: EngineClient, config: PoolConfig, *, owner: str) -> None:
        self.api = api
        self.config = config
        self.owner = owner
        self._idle: dict[tuple[Any, ...], list[WarmContainer]] = {}  # least recently used first
        self._live: dict[tuple[Any, ...], int] = {}  # starting + idle + busy, per key
        self._mine: dict[WarmContainer, tuple[Any, ...]] = {}
        self._reserved_mb = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._starting = 0  # containers being created/started right now
        self._sockets: Path | None = None  # private directory of the containers' sockets
        #: Whether runc containers get a unix socket (false once the engine proved it cannot).
        self.unix_socket = config.unix_socket
        self.closing = False

    # --- serving ----------------------------------------------------------------

    async def run(self, spec: Spec, request: bytes, limits: Limits) -> Result | None:
        """Serve ``request`` on a warm or newly started container of ``spec``'s key.

        ``None`` when the pool has no room (key at its cap, budget spent): run one-shot.
        Timings: ``acquire_ms`` (taking a warm container, or starting one) and ``run_ms``.
        Raises :class:`SandboxError` when a container cannot be started, or the pool
        was closed during the call.
        """
        self._ensure_reaper()
        started = time.monotonic()
        container, warm = self._take(spec.key)
        if container is None:
            if not self._reserve(spec):
                return None
            container = await self._start(spec)
        acquired = time.monotonic()
        try:
            outcome = await container.call(request, limits)
        except BaseException:
            self._retire(container)  # cancelled mid-call: its state is unknown
            raise
        if self.closing:
            raise SandboxError("the docker sandbox was closed during the run")
        self._release(container, spec, reusable=outcome.reusable)
        done = time.monotonic()
        timings = {"acquire_ms": (acquired - started) * 1000, "run_ms": (done - acquired) * 1000}
        return replace(outcome.result, duration_ms=(done - started) * 1000, timings=timings, warm=warm)

    async def prewarm(self, spec: Spec, count: int) -> int:
        """Start up to ``count`` idle containers of ``spec`` (within cap and budget,
        evicting nothing). Returns how many were started. Raises :class:`SandboxError`."""
        self._ensure_reaper()
        started = 0
        for _ in range(max(0, count)):
            if not self._reserve(spec, evict=False):
                break
            container = await self._start(spec)
            self._release(container, spec, reusable=True)
            started += 1
        return started

    def stats(self) -> dict[str, int]:
        """Counts for dashboards and tests: live and idle containers, reserved MiB."""
        idle = sum(len(v) for v in self._idle.values())
        return {"live": len(self._mine), "idle": idle, "busy": len(self._mine) - idle,
                "reserved_mb": self._reserved_mb}

    def _take(self, key: tuple[Any, ...]) -> tuple[WarmContainer | None, bool]:
        """The most recently used healthy idle container of ``key`` (health-checked)."""
        idle = self._idle.get(key)
        while idle:
            container = idle.pop()
            if container.healthy:
                return container, True
            self._retire(container)
        return None, False

    def _reserve(self, spec: Spec, *, evict: bool = True) -> bool:
        """Count a container about to start against the cap and the budget."""
        if self.closing or not self.config.enabled:
            return False
        key, need = spec.key, spec.limits.memory_mb
        if self._live.get(key, 0) >= self.config.max_per_key or need > self.config.max_total_memory_mb:
            return False
        while self._reserved_mb + need > self.config.max_total_memory_mb:
            if not evict or not self._evict_one():
                return False
        self._reserved_mb += need
        self._live[key] = self._live.get(key, 0) + 1
        return True

    def _unreserve(self, spec: Spec) -> None:
        self._reserved_mb -= spec.limits.memory_mb
        self._live[spec.key] -= 1
        if not self._live[spec.key]:
            del self._live[spec.key]

    def _evict_one(self) -> bool:
        """Retire the least recently used idle container of any key; false if none is idle."""
        oldest: WarmContainer | None = None
        for containers in self._idle.values():
            if containers and (oldest is None or containers[0].last_used < oldest.last_used):
                oldest = containers[0]
        if oldest is None:
            return False
        self._idle[self._mine[oldest]].remove(oldest)
        self._retire(oldest)
        return True

    async def _start(self, spec: Spec) -> WarmContainer:
        name = f"sluice-warm-{uuid.uuid4().hex[:16]}"
        config = container_config(
            spec.image, dict(spec.env), spec.limits, runtime=spec.runtime,
            labels={POOL_LABEL: self.owner},
        )

        def start(name: str, sockets: Path | None) -> Awaitable[WarmContainer]:
            return WarmContainer.start(self.api, name, config, list(spec.command), spec.limits.memory_mb,
                                       self.config.max_calls, socket_base=sockets)

        self._starting += 1
        try:
            try:
                container = await start(name, self._socket_base())
            except SocketUnavailable:
                self.unix_socket = False  # this engine cannot: attach from now on
                container = await start(f"{name}-attach", None)
        except BaseException:
            self._unreserve(spec)
            raise
        finally:
            self._starting -= 1
        self._mine[container] = spec.key
        if self.closing:
            self._retire(container)
            raise SandboxError("the docker sandbox was closed during the run")
        return container

    def _socket_base(self) -> Path | None:
        """The private directory for the containers' sockets (made on first use; under
        runsc ``WarmContainer.start`` attaches anyway), or ``None``: attach."""
        if self._sockets is None and self.unix_socket:
            with contextlib.suppress(OSError):  # none: containers attach instead
                self._sockets = socket_base()
        return self._sockets if self.unix_socket else None

    def _release(self, container: WarmContainer, spec: Spec, *, reusable: bool) -> None:
        """Back to the idle list, or retired (and replaced when it simply wore out)."""
        worn_out = container.calls >= min(self.config.max_calls, container.capacity)
        if self.closing or not reusable or worn_out:
            self._retire(container)
            if worn_out and reusable:
                self._spawn(self._replace(spec))
        else:
            container.last_used = time.monotonic()
            self._idle.setdefault(spec.key, []).append(container)
        if self.config.prewarm:
            self._spawn(self._top_up(spec))

    async def _replace(self, spec: Spec) -> None:
        with contextlib.suppress(SandboxError, EngineError):
            await self.prewarm(spec, 1)

    async def _top_up(self, spec: Spec) -> None:
        missing = self.config.prewarm - len(self._idle.get(spec.key, ()))
        with contextlib.suppress(SandboxError, EngineError):
            await self.prewarm(spec, missing)

    # --- retiring -----------------------------------------------------------------

    def _retire(self, container: WarmContainer) -> None:
        """Forget ``container`` now (budget freed at once) and remove it in the background."""
        key = self._mine.pop(container, None)
        if key is None:
            return
        self._reserved_mb -= container.memory_mb
        self._live[key] -= 1
        if not self._live[key]:
            del self._live[key]
        self._spawn(self._destroy(container))

    async def _destroy(self, container: WarmContainer) -> None:
        with contextlib.suppress(EngineError):
            await container.destroy()  # close() lists by label and retries what failed here

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_reaper(self) -> None:
        if self._reaper is None and not self.closing:
            self._reaper = asyncio.get_running_loop().create_task(self._reap(), name="sluice-warm-reaper")

    async def _reap(self) -> None:
        """Every ``reap_interval_s``: retire idle containers past ``idle_s`` or found dead."""
        while not self.closing:
            await asyncio.sleep(self.config.reap_interval_s)
            now = time.monotonic()
            for key, containers in list(self._idle.items()):
                keep = [c for c in containers if c.healthy and now - c.last_used < self.config.idle_s]
                for container in containers:
                    if container not in keep:
                        self._retire(container)
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]

    async def close(self) -> None:
        """Stop the reaper and remove every pooled container (also ones lost track of)."""
        self.closing = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        # Starts in flight finish first (bounded), so none creates a container after the sweep.
        for _ in range(_CLOSE_START_POLLS):
            if not self._starting:
                break
            await asyncio.sleep(0.05)
        for container in list(self._mine):
            self._retire(container)
        self._idle.clear()
        for _ in range(_CLOSE_ROUNDS):  # removals, and starts that retire themselves on seeing closing
            if not self._tasks:
                break
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        with contextlib.suppress(EngineError):
            for found in await self.api.list_containers({POOL_LABEL: self.owner}):
                await self.api.remove(found["Id"])
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)
