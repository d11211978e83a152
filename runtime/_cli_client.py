"""What the CLI's client commands share: the --url and --json options, and one way to
call the API that turns every failure into a message on stderr and exit code 1."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any, NoReturn

import click

from runtime import _cli_render as render
from runtime._cli_http import DEFAULT_URL, ApiError, check_url, request


def url_option(fn: Any) -> Any:
    return click.option("--url", "url", default=None, metavar="URL",
                        help=f"The Sluice API to talk to; overrides `sluice --url` and SLUICE_URL "
                             f"(default {DEFAULT_URL}).")(fn)


def json_option(fn: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the API's JSON answer as it is, for scripts (e.g. piped to jq).")(fn)


def call(url: str | None, method: str, path: str, body: Any = None,
         query: dict[str, str | None] | None = None) -> Any:
    """Call the API at ``url`` or else the global ``--url``; on failure print why and exit 1.

    A URL that is not http(s) is a usage error naming ``--url`` (exit 2).
    """
    root = click.get_current_context().find_root()
    base = url or (root.obj or {}).get("url") or DEFAULT_URL
    problem = check_url(base)
    if problem:
        raise click.BadParameter(problem, param_hint="--url")
    try:
        return request(method, base, path, body, query=query)
    except ApiError as exc:
        fail(str(exc))


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def print_json(body: Any) -> None:
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


def data_of(body: Any) -> Any:
    """The ``data`` of an API answer; exit 1 if the answer is not shaped like one."""
    if not isinstance(body, dict) or "data" not in body:
        fail(f"unexpected answer from the server: {render.one_line(body)}")
    return body["data"]


def next_page_hint(command: str, cursor: Any, **filters: Any) -> str:
    """The command line that shows the next page, with the same filters."""
    args = "".join(f" --{k} {shlex.quote(str(v))}" for k, v in filters.items() if v is not None)
    return f"\nmore: sluice {command}{args} --cursor {shlex.quote(render.clean(cursor))}"
