"""The `sluice` command line. Thin: client commands speak the HTTP API; `dev` and `node`
hand over to the wiring in :mod:`runtime.devserver` and :mod:`runtime.node`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from runtime import _cli_render as render
from runtime._cli_http import ApiError, request

URL_HELP = "Sluice API to talk to (env SLUICE_URL)."
JSON_HELP = "Print the API's JSON instead of a table (for scripts)."


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sluice")
def main() -> None:
    """Sluice: event-driven background work, every step in a sandbox.

    \b
    Start a dev server:   sluice dev examples
    Send an event:        sluice send shop/order.created --data '{"id": 7, "total": 150}'
    See what ran:         sluice runs ; sluice run RUN_ID
    """


def _url_option(fn: Any) -> Any:
    return click.option("--url", envvar="SLUICE_URL", default="http://127.0.0.1:8288", show_default=True,
                        help=URL_HELP)(fn)


def _fail(exc: ApiError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@main.command()
@click.argument("name")
@click.option("--data", "data", default="{}", metavar="JSON",
              help="The event's data, a JSON object, e.g. '{\"id\": 7}'.")
@click.option("--id", "event_id", default=None, help="Idempotency key: the same id within 24 h is one event.")
@click.option("--key", envvar="SLUICE_EVENT_KEY", default="dev", show_default=True,
              help="Event key to send with (env SLUICE_EVENT_KEY); `sluice dev` accepts any.")
@_url_option
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def send(name: str, data: str, event_id: str | None, key: str, url: str, as_json: bool) -> None:
    """Send an event NAME (e.g. shop/order.created) and print its id."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
    if not isinstance(payload, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"id\": 7}'", param_hint="--data")
    event: dict[str, Any] = {"name": name, "data": payload}
    if event_id:
        event["id"] = event_id
    try:
        body = request("POST", url, f"/e/{key}", event)
    except ApiError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(body))
    else:
        for ident in body["ids"]:
            click.echo(ident)


@main.command()
@click.option("--function", default=None, help="Only runs of this function, e.g. shop/process-order.")
@click.option("--status", type=click.Choice(["queued", "running", "sleeping", "waiting", "completed", "failed",
                                             "cancelled"]), default=None, help="Only runs with this status.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="How many, newest first.")
@_url_option
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def runs(function: str | None, status: str | None, limit: int, url: str, as_json: bool) -> None:
    """List recent runs, newest first."""
    query = {"function": function, "status": status, "limit": str(limit)}
    try:
        body = request("GET", url, "/v1/runs", query=query)
    except ApiError as exc:
        _fail(exc)
    click.echo(json.dumps(body) if as_json else render.runs_table(body["data"]))


@main.command()
@click.argument("run_id")
@_url_option
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def run(run_id: str, url: str, as_json: bool) -> None:
    """Show one run: its status, each step's output and timing, and its result."""
    try:
        body = request("GET", url, f"/v1/runs/{run_id}")
    except ApiError as exc:
        _fail(exc)
    click.echo(json.dumps(body) if as_json else render.run_detail(body["data"]))


@main.command()
@click.argument("app", default="examples", type=click.Path(file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8288, show_default=True, help="HTTP port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--sandbox", type=click.Choice(["wasm", "docker"]), default="wasm", show_default=True,
              help="Where Python apps' steps run: CPython-on-WASI, or Docker containers (needs an engine). "
                   "WASM modules always run in the WASM sandbox.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".sluice"),
              show_default=True, help="Where the embedded NATS store and the history database live.")
@click.option("--reload/--no-reload", default=True, show_default=True, help="Reload apps when their files change.")
def dev(app: Path, port: int, host: str, sandbox: str, data_dir: Path, reload: bool) -> None:
    """Run everything on this machine: embedded NATS, API, scheduler, executor.

    APP is a directory holding a Python app (app.py), WASM modules (*.wasm, *.wat),
    or sub-directories of them (default: examples).
    """
    if not app.is_dir():
        raise click.BadParameter(f"{app} is not a directory", param_hint="APP")
    from runtime.devserver import run_dev

    run_dev(app, host=host, port=port, sandbox=sandbox, data_dir=data_dir, reload=reload)


@main.command()
@click.option("--nats", required=True, envvar="SLUICE_NATS", help="NATS URL(s), e.g. nats://10.0.0.5:4222.")
@click.option("--history", envvar="SLUICE_HISTORY", default="sqlite:///var/lib/sluice/history.db", show_default=True,
              help="History store URL.")
@click.option("--app", "apps", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="App directory to load (repeatable).")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address the API listens on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8288, show_default=True, help="HTTP port.")
@click.option("--roles", default="api,scheduler,executor", show_default=True,
              help="Comma-separated roles this node plays.")
@click.option("--sandbox", type=click.Choice(["wasm", "docker"]), default="docker", show_default=True,
              help="Sandbox for Python apps.")
@click.option("--event-key", "event_keys", multiple=True, envvar="SLUICE_EVENT_KEYS",
              help="Accept events only with this key (repeatable). Without any, every key is accepted.")
def node(nats: str, history: str, apps: tuple[Path, ...], host: str, port: int, roles: str, sandbox: str,
         event_keys: tuple[str, ...]) -> None:
    """Run a runtime node of a fleet, around a NATS cluster."""
    from runtime.node import run_node

    run_node(nats=nats, history=history, apps=list(apps), host=host, port=port,
             roles=[r.strip() for r in roles.split(",") if r.strip()], sandbox=sandbox,
             event_keys=list(event_keys) or None)
