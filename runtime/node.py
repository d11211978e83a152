"""A runtime node: the API, scheduler and executor wired to one bus, history and sandboxes.

The dev server and a fleet node are the same :class:`Node`; only their wiring
(embedded NATS or a cluster URL, which roles run) differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web

from bus import Bus, open_bus
from runtime.api import Api
from runtime.cancels import Cancels
from runtime.effects import Effects
from runtime.egress import Egress
from runtime.executor import Executor
from runtime.executors import ExecutorProcesses, announce_ready, executor_command
from runtime.flow import FlowControl, FlowOptionError
from runtime.history import History
from runtime.limits import RuntimeLimits
from runtime.operations import Operations
from runtime.registry import AppSource, FunctionDef, Registry, RegistryError, describe_trigger, discover
from runtime.reload import watch
from runtime.scheduler import Scheduler
from runtime.state import RunStore
from runtime.streams import CANCELS_BUCKET, RUNS_BUCKET, WAITS_BUCKET, events_stream, steps_stream
from runtime.waits import Waits
from sandboxes import Sandbox, open_sandbox

log = structlog.get_logger("sluice.node")

ROLES = ("api", "scheduler", "executor")


@dataclass(frozen=True)
class NodeConfig:
    """How a node runs. ``port`` 0 picks a free port (see :attr:`Node.url`)."""

    host: str = "127.0.0.1"
    port: int = 8288
    roles: Collection[str] = ROLES
    event_keys: Collection[str] | None = None
    limits: RuntimeLimits = field(default_factory=RuntimeLimits.from_env)
    concurrency: int = 8
    recover_on_start: bool = False
    #: Log each function registered at info (an extra executor process logs them at debug).
    announce: bool = True


class Node:
    def __init__(self, config: NodeConfig, *, bus: Bus, history: History, sandboxes: dict[str, Sandbox]) -> None:
        unknown = set(config.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(sorted(unknown))}: choose from {', '.join(ROLES)}")
        self.config = config
        self.bus = bus
        self.history = history
        self.sandboxes = sandboxes
        self.registry = Registry(sandboxes, config.limits)
        self.flow = FlowControl(bus, self.registry.get)
        self._scheduler: Scheduler | None = None
        self._executor: Executor | None = None
        self._runner: web.AppRunner | None = None
        self._ready = False
        #: More conditions for ``/readyz`` (the dev server's: its executor processes are up).
        self.also_ready: list[Callable[[], bool]] = []
        self._egress = Egress()
        self.url = ""

    async def start(self, apps: Sequence[AppSource] = ()) -> None:
        """Start every role. ``apps`` are registered first: a scheduler that took events
        before knowing its functions would match them to nothing."""
        await self.bus.start()
        await self.bus.ensure_stream(events_stream(self.config.limits))
        await self.bus.ensure_stream(steps_stream(self.config.limits))
        runs = RunStore(await self.bus.kv(RUNS_BUCKET), max_bytes=self.config.limits.run_state_bytes)
        waits = Waits(self.bus, runs, await self.bus.kv(WAITS_BUCKET), self.history)
        operations = Operations(self.bus, runs, waits, self.history)
        await self.history.start()
        await self.load_apps(apps)
        if "scheduler" in self.config.roles:
            cancels = Cancels(runs, await self.bus.kv(CANCELS_BUCKET), operations)
            self._scheduler = Scheduler(self.bus, runs, self.registry, self.history, waits, cancels, self.flow)
            await self.flow.start(starter=self._scheduler.start_flow_run)
            await self.flow.recover()
            await self._scheduler.start()
        else:
            await self.flow.start()  # executor-only and API-only nodes still take concurrency slots
        if "executor" in self.config.roles:
            effects = Effects(self.bus, self._egress, self.config.limits)
            self._executor = Executor(self.bus, runs, self.registry, self.history, self.config.limits,
                                      waits=waits, effects=effects, flow=self.flow,
                                      concurrency=self.config.concurrency)
            await self._executor.start()
            if self.config.recover_on_start:
                await self._executor.recover()
        if "api" in self.config.roles:
            api = Api(self.bus, self.history, self.registry, self.config.limits,
                      operations,
                      event_keys=self.config.event_keys, ready=self.ready)
            self._runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.config.host, self.config.port)
            await site.start()
            port = self._runner.addresses[0][1] if self._runner.addresses else self.config.port
            self.url = f"http://{self.config.host}:{port}"
        self._ready = True

    def ready(self) -> bool:
        """Started, not stopping, and every condition in :attr:`also_ready` holds."""
        return self._ready and all(check() for check in self.also_ready)

    async def load_apps(self, sources: Sequence[AppSource]) -> list[str]:
        """Introspect each app in its sandbox and register its functions; returns the errors."""
        errors: list[str] = []
        for source in sources:
            try:
                fns = await self.registry.introspect(source)
            except RegistryError as exc:
                log.error("app not loaded", source=source.target.ref, error=str(exc))
                errors.append(str(exc))
                continue
            fns = self._checked(fns, errors)
            apps = {fn.app for fn in fns}
            for app in apps:
                self.registry.replace_app(app, [f for f in fns if f.app == app])
            if self._scheduler is not None:
                await self._scheduler.arm_crons()
            if self._executor is not None:
                await self._executor.functions_changed()
            say = log.info if self.config.announce else log.debug
            for fn in fns:
                say("function registered", function=fn.fqid, sandbox=fn.sandbox,
                    triggers=[describe_trigger(t) for t in fn.triggers])
        return errors

    def _checked(self, fns: list[FunctionDef], errors: list[str]) -> list[FunctionDef]:
        """The functions whose flow-control options are usable; the others are refused by name."""
        good = []
        for fn in fns:
            try:
                self.flow.check(fn)
            except FlowOptionError as exc:
                log.error("function not loaded", function=fn.fqid, error=str(exc))
                errors.append(f"{fn.fqid}: {exc}")
                continue
            good.append(fn)
        return good

    async def stop(self) -> None:
        self._ready = False
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._scheduler is not None:
            await self._scheduler.stop()
            self._scheduler = None
        if self._executor is not None:
            await self._executor.stop()
            self._executor = None
        await self.flow.stop()
        await self._egress.close()
        await self.history.close()
        for sandbox in self.sandboxes.values():
            with contextlib.suppress(Exception):
                await sandbox.close()
        await self.bus.close()


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve_until_signal(node: Node, *, executors: int, nats: str, history: str, apps: Sequence[Path],
                             sandbox: str, reload: bool, started: Callable[[], None] = lambda: None) -> None:
    """Run a started ``node`` until SIGINT/SIGTERM, with ``executors`` more executor
    processes on ``nats`` and ``history`` beside it (``/readyz`` waits for them) and, with
    ``reload``, ``apps`` reloaded when their files change; then stop them all. ``started``
    runs once all that is under way (the dev server prints its banner)."""
    extra = ExecutorProcesses([executor_command(i, nats=nats, history=history, apps=apps, sandbox=sandbox,
                                                reload=reload) for i in range(1, executors + 1)])
    node.also_ready.append(lambda: extra.ready)
    watcher: asyncio.Task[None] | None = None
    try:
        started()
        extra.start()
        watcher = asyncio.create_task(watch(node, apps, sandbox)) if reload and apps else None
        await wait_for_signal()
    finally:
        if watcher is not None:
            watcher.cancel()
        log.info("stopping")
        await asyncio.gather(extra.stop(), node.stop())


def run_node(*, nats: str, history: str, apps: Sequence[Path] = (), host: str = "127.0.0.1", port: int = 8288,
             roles: Collection[str] = ROLES, sandbox: str = "docker",
             event_keys: Collection[str] | None = None, executors: int = 0, reload: bool = False,
             worker_index: int = 0) -> None:
    """Run a fleet node until SIGINT/SIGTERM (``sluice node``), with ``executors`` more
    executor processes beside it (:mod:`runtime.executors`). ``worker_index`` > 0: this
    is one of those processes (its log lines say ``executor=N``)."""
    import uvloop

    from runtime.logs import configure

    configure()
    if worker_index:
        structlog.contextvars.bind_contextvars(executor=worker_index)

    async def main() -> None:
        names = {sandbox, "wasm"}
        node = Node(NodeConfig(host=host, port=port, roles=roles, event_keys=event_keys, announce=not worker_index),
                    bus=open_bus(nats), history=History(history),
                    sandboxes={name: open_sandbox(name) for name in names})
        await node.start([src for app_dir in apps for src in discover(app_dir, sandbox)])
        log.info("node started", url=node.url or None, roles=sorted(roles))
        if worker_index:
            announce_ready()
        await serve_until_signal(node, executors=executors, nats=nats, history=history, apps=apps,
                                 sandbox=sandbox, reload=reload)

    uvloop.run(main())
