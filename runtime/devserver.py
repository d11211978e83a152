"""The dev server: a wiring file, not a second code path.

It starts an embedded ``nats-server`` (data under ``DATA_DIR/nats``), SQLite history
(``DATA_DIR/history.db``) and one :class:`runtime.node.Node` with every role, loads
the apps in ``APP`` (introspected in their sandboxes), and reloads them when their
files change. With ``executors`` > 0 it also runs that many executor-only nodes in
their own processes on the same NATS and history (:mod:`runtime.executors`), so steps
use more than one core. Killing it and starting it again carries on every unfinished run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bus.nats import NatsBus
from bus.server import NatsServer
from runtime.history import History
from runtime.node import Node, NodeConfig, serve_until_signal
from runtime.registry import describe_trigger, discover
from sandboxes import Sandbox, open_sandbox


def run_dev(app_dir: Path, *, host: str = "127.0.0.1", port: int = 8288, sandbox: str = "wasm",
            data_dir: Path = Path(".sluice"), reload: bool = True, executors: int = 0) -> None:
    """Run the dev server until SIGINT/SIGTERM."""
    import uvloop

    from runtime.logs import configure

    configure()
    data_dir.mkdir(parents=True, exist_ok=True)
    uvloop.run(_main(app_dir, host=host, port=port, sandbox=sandbox, data_dir=data_dir, reload=reload,
                     executors=executors))


async def _main(app_dir: Path, *, host: str, port: int, sandbox: str, data_dir: Path, reload: bool,
                executors: int) -> None:
    server = NatsServer(data_dir / "nats")
    await server.start()
    try:
        sandboxes: dict[str, Sandbox] = {name: open_sandbox(name) for name in {"wasm", sandbox}}
        history = f"sqlite:///{(data_dir / 'history.db').resolve()}"
        node = Node(
            NodeConfig(host=host, port=port, recover_on_start=True),
            bus=NatsBus(server.url), history=History(history), sandboxes=sandboxes,
        )
        await node.start(discover(app_dir, sandbox))
        await serve_until_signal(node, executors=executors, nats=server.url, history=history, apps=[app_dir],
                                 sandbox=sandbox, reload=reload, started=lambda: _banner(node, app_dir, executors))
    finally:
        await server.stop()


def _banner(node: Node, app_dir: Path, executors: int) -> None:
    fns = node.registry.all()
    more = f", {executors} more executor process{'es' if executors > 1 else ''}" if executors else ""
    lines = [f"Sluice dev server on {node.url}  (apps from {app_dir}, {len(fns)} functions{more})"]
    for fn in fns:
        trig = ", ".join(describe_trigger(t) for t in fn.triggers)
        lines.append(f"  {fn.fqid:<32} on {trig}  [{fn.sandbox}{', reused guests' if fn.target.reuse else ''}]")
    names = [t["event"] for fn in fns for t in fn.triggers if "event" in t]
    example = names[0] if names else "demo/hello"
    lines.append(f"Send an event:  sluice send {example} --data '{{}}'   |   list runs:  sluice runs")
    print("\n".join(lines), file=sys.stderr, flush=True)
