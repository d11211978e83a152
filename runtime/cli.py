"""The ``sluice`` command line. Thin by design: the client commands (``send``,
``events``, ``event``, ``functions`` here; ``runs``, ``run``, ``cancel``, ``replay`` in
:mod:`runtime._cli_runs`) speak the HTTP API of docs/api.md with the standard library;
``dev`` and ``node`` (in :mod:`runtime._cli_serve`) hand over to
:mod:`runtime.devserver` and :mod:`runtime.node`, imported only when run so that every
other command starts fast.

Exit codes: 0 done; 1 the server refused or could not be reached (message on stderr);
2 bad usage (click's, naming the option).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from runtime import _cli_render as render
from runtime._cli_client import call, data_of, fail, json_option, next_page_hint, print_json, url_option
from runtime._cli_http import DEFAULT_URL, segment
from runtime._cli_runs import cancel, replay, run, runs
from runtime._cli_serve import dev, node

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.option("--url", envvar="SLUICE_URL", default=DEFAULT_URL, show_default=True, show_envvar=True,
              metavar="URL", help="The Sluice API the client commands talk to, e.g. --url http://10.0.0.5:8288.")
@click.version_option(package_name="sluice", message="sluice %(version)s")
@click.pass_context
def main(ctx: click.Context, url: str) -> None:
    """Sluice: event-driven background work, every step in a sandbox.

    \b
    Start a dev server:   sluice dev examples
    Send an event:        sluice send shop/order.created --data '{"id": 7, "total": 150}'
    See what ran:         sluice runs        then   sluice run RUN_ID
    See what came in:     sluice events      then   sluice event EVENT_ID
    Act on a run:         sluice cancel RUN_ID   |  sluice replay RUN_ID

    Run `sluice COMMAND --help` for each command's options and examples.
    """
    ctx.obj = {"url": url}


def _read_data(data: str) -> Any:
    """--data's value: JSON text, ``@file`` for a file's JSON, or ``-`` for stdin's."""
    source = "--data"
    if data == "-":
        text, source = sys.stdin.read(), "--data - (stdin)"
    elif data.startswith("@"):
        try:
            with open(data[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {data[1:]}: {exc.strerror}", param_hint="--data") from None
        source = f"--data {data}"
    else:
        text = data
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc}); e.g. --data '{{\"id\": 7}}'", param_hint=source) from None
    if not isinstance(payload, dict):
        raise click.BadParameter(f"must be a JSON object, not {type(payload).__name__}; "
                                 "e.g. --data '{\"id\": 7}'", param_hint=source)
    return payload


@main.command(short_help="Send an event.")
@click.argument("name")
@click.option("--data", "data", default="{}", show_default=True, metavar="JSON",
              help="The event's data: a JSON object, @FILE to read one from a file, or - for stdin. "
                   "E.g. --data '{\"id\": 7, \"total\": 150}'.")
@click.option("--id", "event_id", default=None, metavar="ID",
              help="Idempotency key: events with the same id within 24 h are one event, e.g. --id order-7. "
                   "Default: the server makes a new id.")
@click.option("--key", envvar="SLUICE_EVENT_KEY", default="dev", show_default=True, show_envvar=True,
              help="Event key to send with, e.g. --key $KEY. `sluice dev` accepts any key; "
                   "a node started with --event-key accepts only those.")
@url_option
@json_option
def send(name: str, data: str, event_id: str | None, key: str, url: str | None, as_json: bool) -> None:
    """Send one event NAME and print its id.

    \b
    sluice send shop/order.created --data '{"id": 7, "total": 150}'
    sluice send shop/order.created --data @order.json --id order-7
    echo '{"id": 7}' | sluice send shop/order.created --data -

    Every function triggered by NAME starts a run; see them with `sluice runs`.
    """
    event: dict[str, Any] = {"name": name, "data": _read_data(data)}
    if event_id is not None:
        event["id"] = event_id
    body = call(url, "POST", f"/e/{segment(key)}", event)
    if as_json:
        print_json(body)
        return
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list):
        fail(f"unexpected answer from the server: {render.one_line(body)}")
    for ident in ids:
        click.echo(render.clean(ident))


@main.command(short_help="List received events, newest first.")
@click.option("--name", default=None, help="Only events with this name, e.g. shop/order.created.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="How many events to show (1-1000), newest first.")
@click.option("--cursor", default=None, help="Continue after the previous page (the value it printed last).")
@url_option
@json_option
def events(name: str | None, limit: int, cursor: str | None, url: str | None, as_json: bool) -> None:
    """List received events, newest first.

    \b
    sluice events
    sluice events --name shop/order.created --limit 5
    """
    body = call(url, "GET", "/v1/events", query={"name": name, "limit": str(limit), "cursor": cursor})
    if as_json:
        print_json(body)
        return
    click.echo(render.events_table(data_of(body) or []))
    if body.get("cursor"):
        click.echo(next_page_hint("events", body["cursor"], name=name, limit=limit))


@main.command(short_help="Show an event and the runs it started.")
@click.argument("event_id")
@url_option
@json_option
def event(event_id: str, url: str | None, as_json: bool) -> None:
    """Show event EVENT_ID: its data and the runs it started.

    \b
    sluice event 01JD3X2Q7Y8Z9A0B1C2D3E4F5G
    """
    body = call(url, "GET", f"/v1/events/{segment(event_id)}")
    if as_json:
        print_json(body)
        return
    click.echo(render.event_detail(data_of(body) or {}))


@main.command(short_help="List the functions the server knows.")
@url_option
@json_option
def functions(url: str | None, as_json: bool) -> None:
    """List the registered functions: id, what triggers them, and their sandbox.

    \b
    sluice functions
    """
    body = call(url, "GET", "/v1/functions")
    if as_json:
        print_json(body)
        return
    click.echo(render.functions_table(data_of(body) or []))


for command in (runs, run, cancel, replay, dev, node):
    main.add_command(command)


if __name__ == "__main__":
    main()
