"""A guest that writes garbage instead of msgpack, or exits non-zero, fails its step with
a clear recorded error, and the node carries on serving other runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import DevServer, http

APP = Path(__file__).parent / "apps" / "hostile"


def test_garbage_output_and_a_crash_each_fail_with_a_clear_error_and_the_node_carries_on(
    dev_server: Callable[..., DevServer],
) -> None:
    dev = dev_server(APP, expect_functions=3)
    [garbage] = dev.send({"name": "test/garbage"})
    [crash] = dev.send({"name": "test/crash"})
    [fine] = dev.send({"name": "test/fine"})

    [g] = dev.wait_runs_for(garbage, 1)
    assert g["status"] == "failed"
    assert g["error"]["name"] == "ProtocolError" and "not msgpack" in g["error"]["message"]
    assert [s["status"] for s in g["steps"]] == ["retrying", "failed"]

    [c] = dev.wait_runs_for(crash, 1)
    assert c["status"] == "failed"
    assert "exited with code 3" in c["error"]["message"]
    assert "about to crash" in c["steps"][-1]["logs"]

    [f] = dev.wait_runs_for(fine, 1)
    assert f["status"] == "completed"
    status, _ = http("GET", dev.url + "/healthz")
    assert status == 200
