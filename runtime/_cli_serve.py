"""``sluice dev`` and ``sluice node``: option parsing only. The wiring lives in
:mod:`runtime.devserver` and :mod:`runtime.node`, imported when the command runs (they
pull in NATS, wasmtime and Docker clients, which the client commands never need)."""

from __future__ import annotations

from pathlib import Path

import click

SANDBOXES = ("wasm", "docker")
ROLES = ("api", "scheduler", "executor")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: Most extra executor processes a node may start.
EXECUTORS_MAX = 64
_EXECUTORS_HELP = ("Run this many more executor processes beside the node, on the same NATS and history, "
                   "so steps use more than one core (the node runs on one), e.g. --executors 1.")


def _has_apps(app_dir: Path) -> bool:
    """Whether ``app_dir`` or a directory one level down holds app.py, *.wasm or *.wat."""
    dirs = [app_dir, *(p for p in app_dir.iterdir() if p.is_dir() and not p.name.startswith("."))]
    return any((d / "app.py").is_file() or any(d.glob("*.wasm")) or any(d.glob("*.wat")) for d in dirs)


def _missing(module: str, exc: ImportError) -> click.ClickException:
    return click.ClickException(
        f"cannot load {module} ({exc}). Is Sluice installed with all its dependencies? "
        "Try: pip install -e . (or `make install`)")


@click.command(short_help="Run all of Sluice on this machine (dev server).")
@click.argument("app", default="examples", required=False,
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8288, show_default=True,
              help="HTTP port for the event API, read API and dashboard, e.g. --port 9000 (0 picks a free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The dev server accepts any event key: keep it on 127.0.0.1 "
                   "unless you mean to share it, e.g. --host 0.0.0.0.")
@click.option("--sandbox", type=click.Choice(SANDBOXES), default="wasm", show_default=True,
              help="Where Python apps' steps run: wasm (CPython on WASI, no Docker needed) or docker "
                   "(a container each; needs a Docker engine). WASM modules always run in wasm.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".sluice"),
              show_default=True,
              help="Where the embedded NATS store and history.db live; delete it to start afresh, "
                   "e.g. --data-dir /tmp/sluice.")
@click.option("--reload/--no-reload", default=True, show_default=True,
              help="Reload apps when their files change (--no-reload to keep them as started).")
@click.option("--executors", envvar="SLUICE_EXECUTORS", show_envvar=True, type=click.IntRange(0, EXECUTORS_MAX),
              default=0, show_default=True, help=_EXECUTORS_HELP)
def dev(app: Path, port: int, host: str, sandbox: str, data_dir: Path, reload: bool, executors: int) -> None:
    """Run all of Sluice on this machine: embedded NATS, API, scheduler, executor, dashboard.

    APP is a directory holding a Python app (app.py), WASM modules (*.wasm, *.wat), or
    sub-directories holding those (default: examples). Stop with Ctrl-C; start again
    with the same --data-dir and unfinished runs carry on.

    \b
    sluice dev                       # the apps under ./examples
    sluice dev ./myapp --port 9000
    sluice dev ./myapp --sandbox docker --no-reload
    sluice dev ./myapp --executors 1      # steps on a second core
    """
    if not app.exists():
        hint = " (run it from the Sluice repository, or name your app's directory)" if str(app) == "examples" else ""
        raise click.BadParameter(f"directory {str(app)!r} does not exist{hint}, e.g. sluice dev ./myapp",
                                 param_hint="APP")
    if not app.is_dir():
        raise click.BadParameter(f"{str(app)!r} is a file; give the directory that holds it", param_hint="APP")
    if not _has_apps(app):
        click.echo(f"warning: no app.py, *.wasm or *.wat in {app} or its sub-directories yet", err=True)
    if host not in _LOOPBACK:
        click.echo(f"warning: listening on {host}: the dev server accepts events with any key", err=True)
    try:
        from runtime.devserver import run_dev
    except ImportError as exc:
        raise _missing("runtime.devserver", exc) from None
    try:
        run_dev(app, host=host, port=port, sandbox=sandbox, data_dir=data_dir, reload=reload, executors=executors)
    except OSError as exc:  # e.g. the port is taken
        raise click.ClickException(f"dev server stopped: {exc}") from None


def _roles(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    roles = [r.strip() for r in value.split(",") if r.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise click.BadParameter(f"{value!r}: roles are a comma-separated subset of {','.join(ROLES)}")
    return roles


def _nats_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    servers = [s.strip() for s in value.split(",") if s.strip()]
    if value != "memory://" and (not servers or not all(s.startswith(("nats://", "tls://")) for s in servers)):
        raise click.BadParameter(f"{value!r}: give nats://host:port (or tls://), comma-separated for several")
    return value


def _history_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from runtime.history import parse_url  # light: sqlite3 and json only

    try:
        parse_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command(short_help="Run a runtime node of a fleet.")
@click.option("--nats", required=True, envvar="SLUICE_NATS", show_envvar=True, metavar="URL", callback=_nats_url,
              help="NATS server(s) with JetStream, comma-separated, e.g. --nats nats://10.0.0.5:4222.")
@click.option("--history", envvar="SLUICE_HISTORY", show_envvar=True, metavar="URL",
              default="sqlite:///var/lib/sluice/history.db", show_default=True, callback=_history_url,
              help="History store, e.g. --history sqlite:///data/history.db.")
@click.option("--app", "apps", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="App directory to load, as for `sluice dev` (repeatable), e.g. --app /srv/apps/shop.")
@click.option("--host", envvar="SLUICE_HOST", show_envvar=True, default="127.0.0.1", show_default=True,
              help="Address the API listens on, e.g. --host 0.0.0.0 to serve other machines.")
@click.option("--port", envvar="SLUICE_PORT", show_envvar=True, type=click.IntRange(0, 65535), default=8288,
              show_default=True, help="HTTP port of the API, e.g. --port 8080.")
@click.option("--roles", envvar="SLUICE_ROLES", show_envvar=True, default=",".join(ROLES), show_default=True,
              callback=_roles, help="What this node does, comma-separated, e.g. --roles executor.")
@click.option("--sandbox", envvar="SLUICE_SANDBOX", show_envvar=True, type=click.Choice(SANDBOXES),
              default="docker", show_default=True,
              help="Sandbox for Python apps' steps, e.g. --sandbox wasm. WASM modules always run in wasm.")
@click.option("--event-key", "event_keys", multiple=True, envvar="SLUICE_EVENT_KEYS", show_envvar=True,
              help="Accept events only with this key (repeatable; in the env, space-separated), "
                   "e.g. --event-key $KEY. Without any, every key is accepted.")
@click.option("--executors", envvar="SLUICE_EXECUTORS", show_envvar=True, type=click.IntRange(0, EXECUTORS_MAX),
              default=0, show_default=True, help=_EXECUTORS_HELP + " Needs the executor role and a shared NATS "
              "and history store.")
@click.option("--reload/--no-reload", envvar="SLUICE_RELOAD", show_envvar=True, default=False, show_default=True,
              help="Reload the --app directories when their files change.")
@click.option("--worker-index", type=click.IntRange(0, EXECUTORS_MAX), default=0, hidden=True,
              help="Set by a node for the executor processes it starts (--executors).")
def node(nats: str, history: str, apps: tuple[Path, ...], host: str, port: int, roles: list[str], sandbox: str,
         event_keys: tuple[str, ...], executors: int, reload: bool, worker_index: int) -> None:
    """Run one runtime node of a fleet around a NATS cluster.

    Nodes share nothing but NATS and the history store: run as many as you like, each
    with some or all roles (api: the HTTP API; scheduler: events into runs; executor:
    steps into sandboxes).

    \b
    sluice node --nats nats://10.0.0.5:4222 --app /srv/apps/shop
    sluice node --nats nats://10.0.0.5:4222 --roles executor --sandbox docker --app /srv/apps/shop
    sluice node --nats nats://10.0.0.5:4222 --app /srv/apps/shop --executors 3   # a 4-core VM
    """
    if executors:
        if "executor" not in roles:
            raise click.BadParameter("--executors needs the executor role on this node (see --roles)",
                                     param_hint="--executors")
        if nats == "memory://":
            raise click.BadParameter("--executors needs a NATS server: memory:// lives in one process",
                                     param_hint="--executors")
        if history in ("sqlite://:memory:", "sqlite:///:memory:"):
            raise click.BadParameter("--executors needs a history store on disk: :memory: lives in one process",
                                     param_hint="--executors")
    try:
        from runtime.node import run_node
    except ImportError as exc:
        raise _missing("runtime.node", exc) from None
    try:
        run_node(nats=nats, history=history, apps=list(apps), host=host, port=port,
                 roles=roles, sandbox=sandbox, event_keys=list(event_keys) or None, executors=executors,
                 reload=reload, worker_index=worker_index)
    except OSError as exc:
        raise click.ClickException(f"node stopped: {exc}") from None
