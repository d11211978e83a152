"""invoke and fetch: ops the host carries out, results or StepErrors once memoized."""

from pathlib import Path

from .harness import call, run_shim, step_id, write_app
from .host import Host

APP = """
    import sluice

    app = sluice.App("shop")

    @app.function(id="checkout")
    def checkout(ctx):
        local = ctx.step.invoke("price", function="pricing", data={"sku": "x"}, timeout="1m")
        try:
            remote = ctx.step.invoke("tax", function="billing/tax")
        except sluice.StepError as exc:
            remote = {"failed": exc.name, "message": exc.message}
        return {"local": local, "remote": remote}

    @app.function(id="call-api", allow_hosts=["api.example.com"])
    def call_api(ctx):
        got = ctx.step.fetch("get", "https://api.example.com/v1/items?x=1", headers={"X-Token": "t"})
        posted = ctx.step.fetch("post", "https://api.example.com/v1/items", method="post",
                                body={"name": "pen"}, timeout="5s")
        raw = ctx.step.fetch("raw", "http://api.example.com/blob", method="PUT", body=b"\\x00\\x01")
        try:
            ctx.step.fetch("denied", "https://evil.example.net/")
            denied = None
        except sluice.StepError as exc:
            denied = exc.name
        return {"status": got.status, "ok": got.ok, "json": got.json(), "type": got.headers["content-type"],
                "text": posted["body"], "raw": raw.content, "attr": raw.body, "denied": denied}

    @app.function(id="bad")
    def bad(ctx):
        kind = ctx.event.data.kind
        if kind == "url":
            ctx.step.fetch("f", "ftp://x")
        if kind == "method":
            ctx.step.fetch("f", "https://x", method="BREW")
        if kind == "header":
            ctx.step.fetch("f", "https://x", headers={"a": "b\\r\\nc: d"})
        if kind == "body":
            ctx.step.fetch("f", "https://x", body=object())
        if kind == "fn":
            ctx.step.invoke("i", function="Not Valid")
        if kind == "data":
            ctx.step.invoke("i", function="f", data=[1])
"""


def test_invoke_qualifies_a_bare_function_id_with_the_app_and_reports_the_timeout(tmp_path: Path) -> None:
    op = run_shim(write_app(tmp_path, APP), call("checkout")).op
    assert op == {"op": "invoke", "id": step_id("price"), "name": "price", "function": "shop/pricing",
                  "data": {"sku": "x"}, "timeout_ms": 60_000}


def test_invoke_returns_the_output_or_raises_step_error(tmp_path: Path) -> None:
    host = Host(write_app(tmp_path, APP), "checkout", {"name": "x", "data": {}}, invoked={
        "shop/pricing": {"data": {"price": 3}},
        "billing/tax": {"error": {"name": "InvokeTimeout", "message": "no result within 1y"}}})
    assert host.drive() == {"op": "done", "data": {
        "local": {"price": 3}, "remote": {"failed": "InvokeTimeout", "message": "no result within 1y"}}}
    # No timeout given: a year, the longest wait there is; no data: an empty event data map.
    assert host.calls[1][1][0] | {"id": ""} == {"op": "invoke", "id": "", "name": "tax",
                                                "function": "billing/tax", "data": {},
                                                "timeout_ms": 365 * 86_400_000}


def test_fetch_reports_the_request_for_the_node_to_make(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    op = run_shim(app_dir, call("call-api")).op
    assert op == {"op": "fetch", "id": step_id("get"), "name": "get", "timeout_ms": 30_000, "request": {
        "method": "GET", "url": "https://api.example.com/v1/items?x=1", "headers": {"x-token": "t"},
        "body": None}}
    steps = {step_id("get"): {"data": {"status": 200, "headers": {}, "body": b"[]"}}}
    op = run_shim(app_dir, call("call-api", steps=steps)).op
    assert op["request"] == {"method": "POST", "url": "https://api.example.com/v1/items",
                             "headers": {"content-type": "application/json"}, "body": b'{"name":"pen"}'}
    assert op["timeout_ms"] == 5_000


def test_fetch_returns_a_response_and_a_memoized_error_raises_step_error(tmp_path: Path) -> None:
    ok = {"status": 200, "headers": {"content-type": "application/json"}, "body": b'{"items": [1]}'}
    host = Host(write_app(tmp_path, APP), "call-api", {"name": "x", "data": {}}, responses={
        "https://api.example.com/v1/items?x=1": {"data": ok},
        "https://api.example.com/v1/items": {"data": {"status": 500, "headers": {}, "body": "down"}},
        "http://api.example.com/blob": {"data": {"status": 201, "headers": {}, "body": b"\xff"}},
        "https://evil.example.net/": {"error": {"name": "FetchDenied", "message": "evil.example.net not allowed"}}})
    assert host.drive() == {"op": "done", "data": {
        "status": 200, "ok": True, "json": {"items": [1]}, "type": "application/json", "text": "down",
        "raw": b"\xff", "attr": "\ufffd", "denied": "FetchDenied"}}
    assert [ops[0]["request"]["method"] for _, ops in host.calls[:4]] == ["GET", "POST", "PUT", "GET"]
    assert host.calls[2][1][0]["request"]["body"] == b"\x00\x01"


def test_bad_fetch_and_invoke_arguments_are_named(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, APP)
    expected = {"url": "fetch 'f': bad url 'ftp://x'", "method": "fetch 'f': bad method 'BREW'",
                "header": "fetch 'f': bad header 'a'", "body": "fetch 'f': bad body of type object",
                "fn": "bad function id in invoke 'i' 'Not Valid'",
                "data": "invoke 'i': data must be a dict"}
    for kind, message in expected.items():
        op = run_shim(app_dir, call("bad", {"name": "x", "data": {"kind": kind}})).op
        assert op["op"] == "error" and op["error"]["message"].startswith(message), (kind, op)
