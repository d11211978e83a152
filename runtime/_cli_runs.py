"""``sluice runs``, ``run``, ``cancel`` and ``replay``: looking at runs and acting on them."""

from __future__ import annotations

import click

from runtime import _cli_render as render
from runtime._cli_client import call, data_of, json_option, next_page_hint, print_json, url_option
from runtime._cli_http import segment

RUN_STATUSES = ("queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled")


@click.command(short_help="List runs, newest first.")
@click.option("--function", default=None, metavar="APP/FN", help="Only runs of this function, e.g. shop/charge.")
@click.option("--status", type=click.Choice(RUN_STATUSES), default=None,
              help="Only runs with this status, e.g. --status failed.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="How many runs to show (1-1000), newest first.")
@click.option("--cursor", default=None, help="Continue after the previous page (the value it printed last).")
@url_option
@json_option
def runs(function: str | None, status: str | None, limit: int, cursor: str | None, url: str | None,
         as_json: bool) -> None:
    """List runs, newest first: id, function, status, start time, duration.

    \b
    sluice runs
    sluice runs --status failed --limit 50
    sluice runs --function shop/process-order --json
    """
    query = {"function": function, "status": status, "limit": str(limit), "cursor": cursor}
    body = call(url, "GET", "/v1/runs", query=query)
    if as_json:
        print_json(body)
        return
    click.echo(render.runs_table(data_of(body) or []))
    if body.get("cursor"):
        click.echo(next_page_hint("runs", body["cursor"], function=function, status=status, limit=limit))


@click.command(short_help="Show a run: its steps and result.")
@click.argument("run_id")
@click.option("--logs", is_flag=True, help="Also print each attempt's logs (what the step printed) and error stacks.")
@url_option
@json_option
def run(run_id: str, logs: bool, url: str | None, as_json: bool) -> None:
    """Show run RUN_ID: its status, every step attempt in order, and its output or error.

    \b
    sluice run 01JD3X2Q7Y8Z9A0B1C2D3E4F5G
    sluice run 01JD3X2Q7Y8Z9A0B1C2D3E4F5G --logs
    """
    body = call(url, "GET", f"/v1/runs/{segment(run_id)}")
    if as_json:
        print_json(body)
        return
    click.echo(render.run_detail(data_of(body) or {}, logs=logs))


@click.command(short_help="Cancel a run.")
@click.argument("run_id")
@url_option
@json_option
def cancel(run_id: str, url: str | None, as_json: bool) -> None:
    """Cancel run RUN_ID: it runs no further step; a sleep or wait it is in ends.

    A run that already finished is left as it is (and its status printed).

    \b
    sluice cancel 01JD3X2Q7Y8Z9A0B1C2D3E4F5G
    """
    body = call(url, "POST", f"/v1/runs/{segment(run_id)}/cancel", {})
    if as_json:
        print_json(body)
        return
    row = data_of(body) or {}
    status = render.clean(row.get("status"))
    if status == "cancelled":
        click.echo(f"run {render.clean(run_id)} cancelled")
    else:
        click.echo(f"run {render.clean(run_id)} had already ended: {status}")


@click.command(short_help="Run a run again, as a new run.")
@click.argument("run_id")
@click.option("--from-step", default=None, metavar="STEP_ID",
              help="Keep the outputs of the steps recorded before this one and run from it on "
                   "(its id as `sluice run --json` shows it). Default: run every step again.")
@url_option
@json_option
def replay(run_id: str, from_step: str | None, url: str | None, as_json: bool) -> None:
    """Start a new run of the same function with the same event as RUN_ID; print its id.

    \b
    sluice replay 01JD3X2Q7Y8Z9A0B1C2D3E4F5G
    sluice replay 01JD3X2Q7Y8Z9A0B1C2D3E4F5G --from-step 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b
    """
    payload = {"from_step": from_step} if from_step is not None else {}
    body = call(url, "POST", f"/v1/runs/{segment(run_id)}/replay", payload)
    if as_json:
        print_json(body)
        return
    click.echo(render.clean((data_of(body) or {}).get("id")))
