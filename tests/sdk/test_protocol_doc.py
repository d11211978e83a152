"""docs/protocol.md's worked example is what the shim really sends, byte for byte."""

import re
from pathlib import Path

from sluice.protocol import frame, pack, step_id

from .harness import REPO, run_shim, write_app

DOC = (REPO / "docs" / "protocol.md").read_text()


def block(name: str) -> str:
    match = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)```", DOC, re.S)
    assert match, f"docs/protocol.md has no example {name!r}"
    return match.group(1)


def hexdump_bytes(name: str) -> bytes:
    return bytes.fromhex("".join(line[10:58] for line in block(name).splitlines()))


EVENT = {"name": "demo/hi", "data": {"who": "ada"}}
FIRST = {"v": 1, "kind": "call", "function": "hello", "event": EVENT, "steps": {},
         "run": {"id": "r1", "attempt": 0}, "target": None}
SECOND = {**FIRST, "steps": {step_id("greet"): {"data": "hi ada"}}}


def test_the_documented_requests_are_what_pack_produces() -> None:
    assert hexdump_bytes("introspect-request") == pack({"v": 1, "kind": "introspect"})
    assert frame(pack({"v": 1, "kind": "introspect"}))[:4] == b"\x00\x00\x00\x14"
    assert hexdump_bytes("call-request") == pack(FIRST)
    assert hexdump_bytes("second-call-request") == pack(SECOND)
    assert step_id("greet") == "35ff71782def36154c8c5bb550a28b4665c227e0"


def test_the_documented_responses_are_what_the_shim_sends(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, block("app"))
    pairs = [("introspect-request", "introspect-response"), ("call-request", "call-response"),
             ("second-call-request", "second-call-response")]
    for request, response in pairs:
        result = run_shim(app_dir, hexdump_bytes(request))
        assert result.code == 0, result.stderr
        assert result.stdout == hexdump_bytes(response), response
