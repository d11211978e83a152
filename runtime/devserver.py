"""The dev server: a wiring file, not a second code path.

It starts an embedded ``nats-server`` (data under ``DATA_DIR/nats``), SQLite history
(``DATA_DIR/history.db``) and one :class:`runtime.node.Node` with every role, loads
the apps in ``APP`` (introspected in their sandboxes), and reloads them when their
files change. Killing it and starting it again carries on every unfinished run.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import structlog

from bus.nats import NatsBus
from bus.server import NatsServer
from runtime.history import History
from runtime.node import Node, NodeConfig, wait_for_signal
from runtime.registry import describe_trigger, discover
from sandboxes import Sandbox, open_sandbox

log = structlog.get_logger("sluice.dev")

WATCH_INTERVAL_S = 1.0


def run_dev(app_dir: Path, *, host: str = "127.0.0.1", port: int = 8288, sandbox: str = "wasm",
            data_dir: Path = Path(".sluice"), reload: bool = True) -> None:
    """Run the dev server until SIGINT/SIGTERM."""
    import uvloop

    from runtime.logs import configure

    configure()
    data_dir.mkdir(parents=True, exist_ok=True)
    uvloop.run(_main(app_dir, host=host, port=port, sandbox=sandbox, data_dir=data_dir, reload=reload))


async def _main(app_dir: Path, *, host: str, port: int, sandbox: str, data_dir: Path, reload: bool) -> None:
    server = NatsServer(data_dir / "nats")
    await server.start()
    try:
        sandboxes: dict[str, Sandbox] = {name: open_sandbox(name) for name in {"wasm", sandbox}}
        node = Node(
            NodeConfig(host=host, port=port, recover_on_start=True),
            bus=NatsBus(server.url), history=History(f"sqlite:///{(data_dir / 'history.db').resolve()}"),
            sandboxes=sandboxes,
        )
        await node.start(discover(app_dir, sandbox))
        try:
            _banner(node, app_dir)
            watcher = asyncio.create_task(_watch(node, app_dir, sandbox)) if reload else None
            await wait_for_signal()
            if watcher is not None:
                watcher.cancel()
        finally:
            log.info("stopping")
            await node.stop()
    finally:
        await server.stop()


def _banner(node: Node, app_dir: Path) -> None:
    fns = node.registry.all()
    lines = [f"Sluice dev server on {node.url}  (apps from {app_dir}, {len(fns)} functions)"]
    for fn in fns:
        trig = ", ".join(describe_trigger(t) for t in fn.triggers)
        lines.append(f"  {fn.fqid:<32} on {trig}  [{fn.sandbox}{', reused guests' if fn.target.reuse else ''}]")
    names = [t["event"] for fn in fns for t in fn.triggers if "event" in t]
    example = names[0] if names else "demo/hello"
    lines.append(f"Send an event:  sluice send {example} --data '{{}}'   |   list runs:  sluice runs")
    print("\n".join(lines), file=sys.stderr, flush=True)


def _snapshot(app_dir: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for path in app_dir.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith("."):
            try:
                out[str(path)] = path.stat().st_mtime
            except OSError:
                continue
    return out


async def _watch(node: Node, app_dir: Path, sandbox: str) -> None:
    """Reload the apps when any file under ``app_dir`` changes (polling: no extra dependency)."""
    seen = await asyncio.to_thread(_snapshot, app_dir)
    while True:
        await asyncio.sleep(WATCH_INTERVAL_S)
        now = await asyncio.to_thread(_snapshot, app_dir)
        if now == seen:
            continue
        seen = now
        log.info("app files changed; reloading")
        errors = await node.load_apps(discover(app_dir, sandbox))
        if not errors:
            log.info("reloaded", functions=[fn.fqid for fn in node.registry.all()])
