"""The shim's bytes: stdout carries the protocol only; bad input exits 2; framed modes serve many."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sluice.protocol import frame, pack, read_frame, unpack

from .harness import ENV, PYTHON, REPO, Server, call, run_shim, step_id, write_app

NOISY = """
    import os, sys
    import sluice

    print("print at import")
    app = sluice.App("noisy")

    @app.function(id="f")
    def f(ctx):
        print("print during the call")
        sys.stdout.write("sys.stdout write\\n")
        sys.__stdout__.write("sys.__stdout__ write\\n")
        sys.__stdout__.flush()
        os.write(1, b"raw fd 1 write\\n")
        return ctx.step.run("s", lambda: print("print in a step") or "value")
"""


def test_user_prints_go_to_stderr_and_never_corrupt_the_response(tmp_path: Path) -> None:
    result = run_shim(write_app(tmp_path, NOISY), call("f"))
    assert result.code == 0
    assert unpack(result.stdout) == {"v": 1, "ops": [{"op": "step", "id": step_id("s"), "name": "s",
                                                      "data": "value"}, {"op": "done", "data": "value"}]}
    for line in ("print at import", "print during the call", "sys.stdout write", "sys.__stdout__ write",
                 "raw fd 1 write", "print in a step"):
        assert line in result.stderr


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "not msgpack"),
    (b"\xc1garbage", "not msgpack"),
    (pack([1, 2]), "request must be a map, got list"),
    (pack({"v": 2, "kind": "call", "function": "f"}), "unsupported protocol version 2"),
    (pack({"v": 1, "kind": "explode"}), "unknown request kind 'explode'"),
    (pack({"v": 1, "kind": "call"}), "a call request needs 'function'"),
    (pack({"v": 1, "kind": "call", "function": "f", "steps": [1]}), "field 'steps' must be a dict"),
    (pack({"v": 1, "kind": "call", "function": "f", "event": "x"}), "field 'event' must be a dict"),
    (pack({"v": 1, "kind": "call", "function": "f", "steps": {"ab": 1}}), "memoized step 'ab' must be a map"),
    (pack({"v": 1, "kind": "call", "function": "f", "run": {"attempt": "2"}}), "run.attempt must be"),
    (pack({"v": 1, "kind": "call", "function": "f", "run": {"id": 5}}), "run.id must be a string"),
])
def test_a_request_that_is_not_protocol_v1_exits_2_with_one_line_on_stderr(
        tmp_path: Path, data: bytes, reason: str) -> None:
    result = run_shim(write_app(tmp_path, NOISY), data)
    assert result.code == 2
    assert result.stdout == b""
    assert reason in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("sluice shim: bad request: ")


def test_garbage_is_refused_before_any_user_code_runs(tmp_path: Path) -> None:
    result = run_shim(write_app(tmp_path, NOISY), b"\x00\x01")
    assert result.code == 2
    assert "print at import" not in result.stderr
    assert result.stderr.startswith("sluice shim: bad request: ")


@pytest.mark.parametrize("args", [["--bogus"], ["--app-dir"], ["--serve", "--socket", "/tmp/x"],
                                  ["--entry", "mod:"]])
def test_bad_usage_exits_2_and_prints_the_usage(tmp_path: Path, args: list[str]) -> None:
    result = run_shim(tmp_path, {"v": 1, "kind": "introspect"}, *args)
    assert result.code == 2
    assert "usage: python -m sluice.shim" in result.stderr


def test_serve_mode_answers_framed_requests_one_at_a_time_until_eof(tmp_path: Path) -> None:
    server = Server(write_app(tmp_path, NOISY))
    try:
        assert server.request({"v": 1, "kind": "introspect"})["app"] == "noisy"
        first = server.request(call("f"))
        assert [op["op"] for op in first["ops"]] == ["step", "done"]  # its one step, then its return
        done = server.request(call("f", steps={step_id("s"): {"data": "memo"}}))
        assert done == {"v": 1, "ops": [{"op": "done", "data": "memo"}]}
        unknown = server.request(call("nope"))
        assert unknown["ops"][0]["error"]["name"] == "UnknownFunction"
    finally:
        code, err = server.close()
    assert code == 0
    assert err.count("print at import") == 1  # the app is loaded once for the whole session
    assert err.count("print during the call") == 2


@pytest.mark.parametrize(("bad", "reason"), [
    (b"\xc1not msgpack", "not msgpack"),
    (pack(call("f", steps={"x": "not a map"})), "memoized step 'x' must be a map, got str"),
])
def test_serve_mode_closes_on_a_bad_frame_after_answering_the_good_ones(
        tmp_path: Path, bad: bytes, reason: str) -> None:
    server = Server(write_app(tmp_path, NOISY))
    try:
        assert server.request({"v": 1, "kind": "introspect"})["app"] == "noisy"
        assert server.request(bad) is None  # the shim closed stdout instead of answering
    finally:
        code, err = server.close()
    assert code == 2
    assert f"sluice shim: bad request: {reason}" in err


def test_serve_mode_reports_a_load_failure_on_every_request(tmp_path: Path) -> None:
    server = Server(write_app(tmp_path, "raise RuntimeError('no config')\n"))
    try:
        for _ in range(2):
            (op,) = server.request(call("f"))["ops"]
            assert op["retriable"] is False
            assert "failed to load app" in op["error"]["message"] and "no config" in op["error"]["message"]
    finally:
        assert server.close()[0] == 0


def test_socket_mode_serves_one_connection_after_another(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path / "app", NOISY)
    path = tmp_path / "shim.sock"
    proc = subprocess.Popen([PYTHON, "-m", "sluice.shim", "--app-dir", str(app_dir), "--socket", str(path)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV, cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while not path.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the shim never created its socket"
            time.sleep(0.02)
        for _ in range(2):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(20)
                conn.connect(str(path))
                reader = conn.makefile("rb")
                for request in ({"v": 1, "kind": "introspect"}, call("f", steps={step_id("s"): {"data": 1}})):
                    conn.sendall(frame(pack(request)))
                    body = read_frame(reader)
                    assert body is not None
                    assert unpack(body)["v"] == 1
                conn.sendall(b"\x00\x00\x00\x02\xc1\xc1")  # garbage closes this connection only
                assert read_frame(reader) is None
                reader.close()
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None and proc.stderr is not None
        out = proc.stdout.read()
        proc.stdout.close()
        proc.stderr.close()
    assert out == b""  # prints went to stderr, never to stdout
    assert os.path.exists(path)


def test_without_dup2_as_on_wasi_prints_still_go_to_stderr(tmp_path: Path) -> None:
    # CPython on WASI has no os.dup2, so fd 1 cannot be moved; everything but raw fd writes is still caught.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\ndel os.dup2\n")
    app_dir = write_app(tmp_path / "app", NOISY.replace('os.write(1, b"raw fd 1 write\\n")', "pass"))
    env = {**ENV, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    result = run_shim(app_dir, call("f"), env=env)
    assert result.code == 0, result.stderr
    assert unpack(result.stdout)["ops"][0]["data"] == "value"
    assert "sys.__stdout__ write" in result.stderr and "print in a step" in result.stderr
