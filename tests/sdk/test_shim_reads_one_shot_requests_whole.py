"""A one-shot request arrives whole however large it is, up to the frame limit, and no further.

The shim reads stdin in 64 KiB pieces (never one 64 MiB read, which CPython would
allocate up front; under WASM that is guest memory: see the sandbox conformance suite's
48 MiB case).
"""

from pathlib import Path

from sluice.protocol import MAX_FRAME_BYTES, pack

from .harness import call, run_shim, step_id, write_app

ECHO = """
    import sluice

    app = sluice.App("echo")

    @app.function(id="size")
    def size(ctx):
        blob = ctx.event.data["blob"]
        return ctx.step.run("measure", lambda: [len(blob), blob[:3], blob[-3:]])
"""


def test_a_request_of_many_read_chunks_reaches_the_app_whole(tmp_path: Path) -> None:
    blob = "abc" + "x" * (3 * 1024 * 1024) + "xyz"  # 3 MiB: dozens of 64 KiB reads
    result = run_shim(write_app(tmp_path, ECHO), call("size", {"name": "e", "data": {"blob": blob}}))
    assert result.code == 0, result.stderr
    measured = [len(blob), "abc", "xyz"]
    assert result.ops == [{"op": "step", "id": step_id("measure"), "name": "measure", "data": measured},
                          {"op": "done", "data": measured}]


def test_a_request_past_the_frame_limit_exits_2_and_says_so(tmp_path: Path) -> None:
    oversized = pack({"v": 1, "kind": "introspect", "pad": b"\0" * MAX_FRAME_BYTES})
    result = run_shim(write_app(tmp_path, ECHO), oversized)
    assert result.code == 2
    assert result.stdout == b""
    assert f"bad request: over {MAX_FRAME_BYTES} bytes" in result.stderr


def test_a_request_exactly_at_the_frame_limit_is_read(tmp_path: Path) -> None:
    head = pack({"v": 1, "kind": "introspect", "pad": b""})
    # msgpack bin32 header is 5 bytes where the empty bin8 was 2: pad so the total is the limit.
    request = pack({"v": 1, "kind": "introspect", "pad": b"\0" * (MAX_FRAME_BYTES - len(head) - 3)})
    assert len(request) == MAX_FRAME_BYTES
    result = run_shim(write_app(tmp_path, ECHO), request)
    assert result.code == 0, result.stderr[-500:]
