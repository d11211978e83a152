"""`ctx.step.fetch`: the node makes the request for the sandbox (which has no network),
only to hosts on the function's allowlist, and records the response as the step output."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.harness import DevServer

APP = '''
import sluice

app = sluice.App("egress")


@app.function(id="allowed", trigger=sluice.event("test/allowed"), allow_hosts=["127.0.0.1:{port}"])
def allowed(ctx):
    resp = ctx.step.fetch("get-greeting", "http://127.0.0.1:{port}/hello?who=sluice")
    return {{"status": resp["status"], "text": resp.content.decode()}}


@app.function(id="denied", trigger=sluice.event("test/denied"), allow_hosts=["api.example.com"], retries=0)
def denied(ctx):
    ctx.step.fetch("sneaky", "http://127.0.0.1:{port}/secret")
'''


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b"hello from the test's server"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_fetch_reaches_an_allowed_host_and_a_denied_host_is_a_clear_step_error(
    dev_server: Callable[..., DevServer], loopback_server: tuple[int, list[str]], tmp_path: Path,
) -> None:
    port, seen = loopback_server
    app_dir = tmp_path / "egress"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP.format(port=port))
    dev = dev_server(app_dir, expect_functions=2)

    [ok_ev] = dev.send({"name": "test/allowed"})
    [run] = dev.wait_runs_for(ok_ev, 1)
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"status": 200, "text": "hello from the test's server"}
    assert seen == ["/hello?who=sluice"]

    [bad_ev] = dev.send({"name": "test/denied"})
    [bad] = dev.wait_runs_for(bad_ev, 1)
    assert bad["status"] == "failed"
    assert "not on this function's allowlist" in bad["error"]["message"]
    assert seen == ["/hello?who=sluice"]  # the denied request never left the node
