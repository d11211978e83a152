"""The CLI's client commands against a real HTTP server on loopback that answers with
canned bodies of the API's shapes (docs/api.md). This tests the client only; the real
API is exercised end to end elsewhere."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from runtime._cli_http import ApiError, request
from runtime.cli import main

RUN_ID = "01RUNAAAAAAAAAAAAAAAAAAAAA"
RUN: dict[str, Any] = {"id": RUN_ID, "function": "shop/process-order", "app": "shop",
       "event_id": "01EVTAAAAAAAAAAAAAAAAAAAAA", "status": "completed", "created_at": 1_767_225_600_000,
       "started_at": 1_767_225_600_010, "ended_at": 1_767_225_601_510, "output": {"charged": 150}, "error": None,
       "attempt": 0}
STEPS: list[dict[str, Any]] = [
    {"step_id": "aa", "name": "charge card", "attempt": 0, "status": "retrying", "output": None,
     "error": {"name": "TimeoutError", "message": "card service slow", "stack": "Traceback: line 3"},
     "started_at": 1_767_225_600_010, "ended_at": 1_767_225_600_510, "duration_ms": 500.0,
     "timings": {"sandbox_ms": 499}, "logs": "trying card\n"},
    {"step_id": "aa", "name": "charge card", "attempt": 1, "status": "completed", "output": {"charged": 150},
     "error": None, "started_at": 1_767_225_601_000, "ended_at": 1_767_225_601_200, "duration_ms": 200.0,
     "timings": {}, "logs": ""},
    {"step_id": "bb", "name": "send \x1b[31mreceipt", "attempt": 0, "status": "completed",
     "output": {"text": "x" * 500}, "error": None, "started_at": 1_767_225_601_300,
     "ended_at": 1_767_225_601_500, "duration_ms": 12.5, "timings": {}, "logs": ""},
]


class FakeApi:
    """An aiohttp server on 127.0.0.1, port 0, in its own thread; remembers each request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> FakeApi:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.add_routes([
            web.post("/e/{key}", self.post_events),
            web.get("/v1/runs", self.list_runs),
            web.get("/v1/runs/{id}", self.get_run),
            web.post("/v1/runs/{id}/cancel", self.cancel_run),
            web.post("/v1/runs/{id}/replay", self.replay_run),
            web.get("/v1/functions", self.list_functions),
            web.get("/v1/events", self.list_events),
            web.get("/v1/events/{id}", self.get_event),
            web.get("/html/v1/runs", self.html),
            web.get("/broken/v1/runs", self.broken),
            web.get("/slow/v1/runs", self.slow),
        ])
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def _remember(self, request: web.Request, body: Any = None) -> None:
        self.requests.append({"method": request.method, "path": request.path, "query": dict(request.query),
                              "body": body})

    async def post_events(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._remember(request, body)
        if request.match_info["key"] != "dev":
            return web.json_response({"error": "unknown event key"}, status=401)
        if body["name"] == "too/big":
            return web.json_response({"error": "event 0 is 600000 bytes; the limit is 524288"}, status=413)
        return web.json_response({"ids": [body.get("id") or "01NEWEVENTAAAAAAAAAAAAAAA"], "status": 200})

    async def list_runs(self, request: web.Request) -> web.Response:
        self._remember(request)
        if request.query.get("cursor"):
            return web.json_response({"data": [{**RUN, "id": "01OLDER"}], "cursor": None})
        running = {**RUN, "id": "01RUNNING", "status": "running", "ended_at": None, "output": None}
        return web.json_response({"data": [running, RUN], "cursor": "CURSOR-1"})

    async def get_run(self, request: web.Request) -> web.Response:
        self._remember(request)
        run_id = request.match_info["id"]
        if run_id == RUN["id"]:
            return web.json_response({"data": {**RUN, "steps": STEPS}})
        if run_id == "01FAILED":
            failed = {**RUN, "id": run_id, "status": "failed", "output": None,
                      "error": {"name": "ValueError", "message": "bad order", "stack": "at line 9"}}
            return web.json_response({"data": {**failed, "steps": STEPS[:1]}})
        return web.json_response({"error": f"no run {run_id}"}, status=404)

    async def cancel_run(self, request: web.Request) -> web.Response:
        self._remember(request, await request.json())
        run_id = request.match_info["id"]
        if run_id == RUN_ID:  # already completed: returned unchanged
            return web.json_response({"data": RUN})
        if run_id == "01SLEEPING":
            return web.json_response({"data": {**RUN, "id": run_id, "status": "cancelled"}})
        return web.json_response({"error": f"no run {run_id}"}, status=404)

    async def replay_run(self, request: web.Request) -> web.Response:
        self._remember(request, await request.json())
        return web.json_response({"data": {**RUN, "id": "01REPLAY", "status": "queued", "replay_of": RUN_ID}})

    async def list_functions(self, request: web.Request) -> web.Response:
        self._remember(request)
        return web.json_response({"data": [
            {"id": "shop/vip-welcome", "app": "shop", "slug": "vip-welcome", "name": "VIP welcome",
             "triggers": [{"event": "shop/order.created", "if": "event.data.total > 100"}], "retries": 3,
             "timeout_ms": 300000, "sandbox": "wasm", "target": {"kind": "python", "ref": "/apps/shop"}},
            {"id": "shop/nightly", "triggers": [{"cron": "0 3 * * *"}], "sandbox": "docker"}]})

    async def list_events(self, request: web.Request) -> web.Response:
        self._remember(request)
        return web.json_response({"data": [{"id": "01EVT", "name": "shop/order.created", "data": {"id": 7},
                                            "ts": 1, "received_at": RUN["created_at"]}], "cursor": None})

    async def get_event(self, request: web.Request) -> web.Response:
        self._remember(request)
        return web.json_response({"data": {"id": request.match_info["id"], "name": "shop/order.created",
                                           "data": {"id": 7, "total": 150}, "ts": RUN["created_at"],
                                           "received_at": RUN["created_at"], "runs": [RUN]}})

    async def html(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    async def broken(self, request: web.Request) -> web.Response:
        return web.Response(text="upstream exploded", status=502)

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"data": [], "cursor": None})


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as server:
        yield server


def sluice(api: FakeApi, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--url", api.url, *args], input=input)
    return result.exit_code, result.stdout, result.stderr


def test_send_posts_the_event_and_prints_its_id(api: FakeApi) -> None:
    code, out, err = sluice(api, "send", "shop/order.created", "--data", '{"id": 7, "total": 150}')
    assert (code, out, err) == (0, "01NEWEVENTAAAAAAAAAAAAAAA\n", "")
    assert api.requests == [{"method": "POST", "path": "/e/dev", "query": {},
                             "body": {"name": "shop/order.created", "data": {"id": 7, "total": 150}}}]


def test_send_passes_the_idempotency_id_and_key_and_can_print_json(api: FakeApi) -> None:
    code, out, _ = sluice(api, "send", "a/b", "--id", "order-7", "--key", "dev", "--json")
    assert code == 0
    assert json.loads(out) == {"ids": ["order-7"], "status": 200}
    assert api.requests[0]["body"] == {"name": "a/b", "data": {}, "id": "order-7"}


def test_send_reads_data_from_stdin(api: FakeApi) -> None:
    code, _, _ = sluice(api, "send", "a/b", "--data", "-", input='{"from": "stdin"}')
    assert code == 0 and api.requests[0]["body"]["data"] == {"from": "stdin"}


def test_send_takes_the_event_key_from_the_environment(api: FakeApi) -> None:
    result = CliRunner(env={"SLUICE_EVENT_KEY": "secret", "SLUICE_URL": api.url}).invoke(main, ["send", "a/b"])
    assert result.exit_code == 1
    assert api.requests[0]["path"] == "/e/secret"
    assert result.stderr == "error: unknown event key\n"


def test_a_server_error_prints_its_message_and_exits_1(api: FakeApi) -> None:
    code, out, err = sluice(api, "send", "too/big")
    assert code == 1 and out == ""
    assert "event 0 is 600000 bytes; the limit is 524288" in err


def test_an_unreachable_server_says_to_start_sluice_dev() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(main, ["--url", f"http://127.0.0.1:{port}", "send", "a/b"])
    assert result.exit_code == 1
    assert f"cannot reach Sluice at http://127.0.0.1:{port}: is `sluice dev` running?" in result.stderr


def test_runs_prints_a_table_and_the_next_page_command(api: FakeApi) -> None:
    code, out, _ = sluice(api, "runs", "--status", "completed", "--function", "shop/process-order")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["RUN", "FUNCTION", "STATUS", "STARTED", "TOOK"]
    assert lines[1].startswith("01RUNNING") and "running" in lines[1] and lines[1].endswith("-")
    assert lines[2].startswith(RUN["id"]) and "shop/process-order" in lines[2] and lines[2].endswith("1.5 s")
    assert "more: sluice runs --function shop/process-order --status completed --limit 20 --cursor CURSOR-1" in out
    assert api.requests[0]["query"] == {"function": "shop/process-order", "status": "completed", "limit": "20"}


def test_runs_with_a_cursor_asks_for_the_next_page(api: FakeApi) -> None:
    code, out, _ = sluice(api, "runs", "--cursor", "CURSOR-1", "--limit", "5")
    assert code == 0 and "01OLDER" in out and "more:" not in out
    assert api.requests[0]["query"] == {"cursor": "CURSOR-1", "limit": "5"}


def test_runs_json_is_the_api_answer(api: FakeApi) -> None:
    code, out, _ = sluice(api, "runs", "--json")
    body = json.loads(out)
    assert code == 0 and body["cursor"] == "CURSOR-1" and body["data"][1] == RUN


def test_run_shows_the_step_timeline_and_output(api: FakeApi) -> None:
    code, out, _ = sluice(api, "run", RUN["id"])
    assert code == 0
    assert f"run       {RUN['id']}" in out
    assert "function  shop/process-order" in out and "status    completed" in out
    assert f"event     {RUN['event_id']}" in out
    assert "took 1.5 s" in out
    timeline = [line for line in out.splitlines() if line.startswith("   ")]
    assert timeline[0].split() == ["1.", "charge", "card", "attempt", "0", "retrying", "500", "ms"]
    assert "error: TimeoutError: card service slow" in out
    assert "logs: 1 line (--logs shows them)" in out
    assert timeline[3].split() == ["2.", "charge", "card", "attempt", "1", "completed", "200", "ms"]
    assert 'output: {"charged":150}' in out
    # A guest's escape sequence is shown, not obeyed; long outputs are cut.
    assert "send \\x1b[31mreceipt" in out and "\x1b" not in out
    assert '"xxxxx' in out and "xxx…" in out
    assert out.rstrip().endswith('"charged": 150\n  }')


def test_run_with_logs_shows_logs_and_stacks(api: FakeApi) -> None:
    code, out, _ = sluice(api, "run", RUN["id"], "--logs")
    assert code == 0 and "        trying card" in out and "Traceback: line 3" in out


def test_a_failed_run_shows_its_error(api: FakeApi) -> None:
    code, out, _ = sluice(api, "run", "01FAILED")
    assert code == 0 and "status    failed" in out and "error     ValueError: bad order" in out
    assert "output" not in out.split("error     ")[1]


def test_an_unknown_run_says_so_and_exits_1(api: FakeApi) -> None:
    code, out, err = sluice(api, "run", "01NOPE")
    assert code == 1 and out == "" and "no run 01NOPE" in err


def test_a_run_id_is_sent_as_one_path_segment(api: FakeApi) -> None:
    code, _, err = sluice(api, "run", "a/../b")
    # The id reached the run handler whole instead of walking up the path.
    assert code == 1 and err == "error: no run a/../b\n"


def test_run_json_is_the_api_answer(api: FakeApi) -> None:
    code, out, _ = sluice(api, "run", RUN["id"], "--json")
    assert code == 0 and json.loads(out) == {"data": {**RUN, "steps": STEPS}}


def test_events_and_event_show_what_came_in_and_what_it_started(api: FakeApi) -> None:
    code, out, _ = sluice(api, "events", "--name", "shop/order.created")
    assert code == 0 and "01EVT" in out and '{"id":7}' in out
    assert api.requests[0]["query"] == {"name": "shop/order.created", "limit": "20"}
    code, out, _ = sluice(api, "event", "01EVT")
    assert code == 0 and "name      shop/order.created" in out and '"total": 150' in out
    assert "runs (1)" in out and RUN["id"] in out


def test_a_page_that_is_not_json_is_reported_not_crashed_on(api: FakeApi) -> None:
    result = CliRunner().invoke(main, ["--url", api.url + "/html", "runs"])
    assert result.exit_code == 1 and "not JSON" in result.stderr and "Traceback" not in result.output


def test_a_plain_text_server_error_is_shown_with_its_status(api: FakeApi) -> None:
    result = CliRunner().invoke(main, ["--url", api.url + "/broken", "runs"])
    assert result.exit_code == 1 and "HTTP 502" in result.stderr and "upstream exploded" in result.stderr


def test_the_command_url_overrides_the_global_one(api: FakeApi) -> None:
    result = CliRunner().invoke(main, ["--url", "http://127.0.0.1:9", "runs", "--url", api.url])
    assert result.exit_code == 0 and "01RUNNING" in result.stdout


def test_a_slow_server_times_out_with_a_clear_message(api: FakeApi) -> None:
    with pytest.raises(ApiError, match=r"did not answer within 0\.3 s"):
        request("GET", api.url + "/slow", "/v1/runs", timeout_s=0.3)


def test_cancel_says_whether_it_cancelled_or_the_run_had_ended(api: FakeApi) -> None:
    code, out, _ = sluice(api, "cancel", "01SLEEPING")
    assert (code, out) == (0, "run 01SLEEPING cancelled\n")
    assert api.requests[0]["method"] == "POST" and api.requests[0]["path"] == "/v1/runs/01SLEEPING/cancel"
    code, out, _ = sluice(api, "cancel", RUN_ID)
    assert (code, out) == (0, f"run {RUN_ID} had already ended: completed\n")
    code, _, err = sluice(api, "cancel", "01NOPE")
    assert code == 1 and "no run 01NOPE" in err


def test_replay_prints_the_new_run_id_and_passes_from_step(api: FakeApi) -> None:
    code, out, _ = sluice(api, "replay", RUN_ID)
    assert (code, out) == (0, "01REPLAY\n") and api.requests[0]["body"] == {}
    code, out, _ = sluice(api, "replay", RUN_ID, "--from-step", "aa", "--json")
    assert code == 0 and json.loads(out)["data"]["replay_of"] == RUN_ID
    assert api.requests[1]["body"] == {"from_step": "aa"}


def test_functions_lists_ids_triggers_and_sandboxes(api: FakeApi) -> None:
    code, out, _ = sluice(api, "functions")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["FUNCTION", "TRIGGERS", "SANDBOX"]
    assert "shop/vip-welcome" in lines[1] and "shop/order.created if event.data.total > 100" in lines[1]
    assert lines[1].endswith("wasm")
    assert '{"cron":"0 3 * * *"}' in lines[2] and lines[2].endswith("docker")
