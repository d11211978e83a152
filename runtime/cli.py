"""The ``sluice`` command line. Thin by design: the client commands (``send``, ``runs``,
``run``, ``events``, ``event``) speak the HTTP API of docs/api.md with the standard
library; ``dev`` and ``node`` (in :mod:`runtime._cli_serve`) hand over to
:mod:`runtime.devserver` and :mod:`runtime.node`, imported only when run so that every
other command starts fast.

Exit codes: 0 done; 1 the server refused or could not be reached (message on stderr);
2 bad usage (click's, naming the option).
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any, NoReturn

import click

from runtime import _cli_render as render
from runtime._cli_http import DEFAULT_URL, ApiError, check_url, request, segment
from runtime._cli_serve import dev, node

RUN_STATUSES = ("queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled")
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

    Run `sluice COMMAND --help` for each command's options and examples.
    """
    ctx.obj = {"url": url}


def _url_option(fn: Any) -> Any:
    return click.option("--url", "url", default=None, metavar="URL",
                        help=f"The Sluice API to talk to; overrides `sluice --url` and SLUICE_URL "
                             f"(default {DEFAULT_URL}).")(fn)


def _json_option(fn: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the API's JSON answer as it is, for scripts (e.g. piped to jq).")(fn)


def _call(url: str | None, method: str, path: str, body: Any = None,
          query: dict[str, str | None] | None = None) -> Any:
    """Call the API at the effective URL; on failure print why to stderr and exit 1."""
    base = url or click.get_current_context().find_root().obj["url"]
    problem = check_url(base)
    if problem:
        raise click.BadParameter(problem, param_hint="--url")
    try:
        return request(method, base, path, body, query=query)
    except ApiError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _print_json(body: Any) -> None:
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


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
@_url_option
@_json_option
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
    body = _call(url, "POST", f"/e/{segment(key)}", event)
    if as_json:
        _print_json(body)
        return
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list):
        _fail(f"unexpected answer from the server: {render.one_line(body)}")
    for ident in ids:
        click.echo(render.clean(ident))


def _next_page_hint(command: str, cursor: Any, **filters: Any) -> str:
    args = "".join(f" --{k} {shlex.quote(str(v))}" for k, v in filters.items() if v is not None)
    return f"\nmore: sluice {command}{args} --cursor {shlex.quote(render.clean(cursor))}"


def _data_of(body: Any) -> Any:
    """The ``data`` of an API answer; exit 1 if the answer is not shaped like one."""
    if not isinstance(body, dict) or "data" not in body:
        _fail(f"unexpected answer from the server: {render.one_line(body)}")
    return body["data"]


@main.command(short_help="List runs, newest first.")
@click.option("--function", default=None, metavar="APP/FN", help="Only runs of this function, e.g. shop/charge.")
@click.option("--status", type=click.Choice(RUN_STATUSES), default=None,
              help="Only runs with this status, e.g. --status failed.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="How many runs to show (1-1000), newest first.")
@click.option("--cursor", default=None, help="Continue after the previous page (the value it printed last).")
@_url_option
@_json_option
def runs(function: str | None, status: str | None, limit: int, cursor: str | None, url: str | None,
         as_json: bool) -> None:
    """List runs, newest first: id, function, status, start time, duration.

    \b
    sluice runs
    sluice runs --status failed --limit 50
    sluice runs --function shop/process-order --json
    """
    query = {"function": function, "status": status, "limit": str(limit), "cursor": cursor}
    body = _call(url, "GET", "/v1/runs", query=query)
    if as_json:
        _print_json(body)
        return
    click.echo(render.runs_table(_data_of(body) or []))
    if body.get("cursor"):
        click.echo(_next_page_hint("runs", body["cursor"], function=function, status=status, limit=limit))


@main.command(short_help="Show a run: its steps and result.")
@click.argument("run_id")
@click.option("--logs", is_flag=True, help="Also print each attempt's logs (what the step printed) and error stacks.")
@_url_option
@_json_option
def run(run_id: str, logs: bool, url: str | None, as_json: bool) -> None:
    """Show run RUN_ID: its status, every step attempt in order, and its output or error.

    \b
    sluice run 01JD3X2Q7Y8Z9A0B1C2D3E4F5G
    sluice run 01JD3X2Q7Y8Z9A0B1C2D3E4F5G --logs
    """
    body = _call(url, "GET", f"/v1/runs/{segment(run_id)}")
    if as_json:
        _print_json(body)
        return
    click.echo(render.run_detail(_data_of(body) or {}, logs=logs))


@main.command(short_help="List received events, newest first.")
@click.option("--name", default=None, help="Only events with this name, e.g. shop/order.created.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="How many events to show (1-1000), newest first.")
@click.option("--cursor", default=None, help="Continue after the previous page (the value it printed last).")
@_url_option
@_json_option
def events(name: str | None, limit: int, cursor: str | None, url: str | None, as_json: bool) -> None:
    """List received events, newest first.

    \b
    sluice events
    sluice events --name shop/order.created --limit 5
    """
    body = _call(url, "GET", "/v1/events", query={"name": name, "limit": str(limit), "cursor": cursor})
    if as_json:
        _print_json(body)
        return
    click.echo(render.events_table(_data_of(body) or []))
    if body.get("cursor"):
        click.echo(_next_page_hint("events", body["cursor"], name=name, limit=limit))


@main.command(short_help="Show an event and the runs it started.")
@click.argument("event_id")
@_url_option
@_json_option
def event(event_id: str, url: str | None, as_json: bool) -> None:
    """Show event EVENT_ID: its data and the runs it started.

    \b
    sluice event 01JD3X2Q7Y8Z9A0B1C2D3E4F5G
    """
    body = _call(url, "GET", f"/v1/events/{segment(event_id)}")
    if as_json:
        _print_json(body)
        return
    click.echo(render.event_detail(_data_of(body) or {}))


main.add_command(dev)
main.add_command(node)


if __name__ == "__main__":
    main()
