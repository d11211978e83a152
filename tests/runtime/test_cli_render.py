"""How the CLI writes times, durations and untrusted text for people."""

from __future__ import annotations

from runtime import _cli_render as render


def test_durations_read_naturally_at_every_scale() -> None:
    assert [render.duration(ms) for ms in (0, 4, 2.5, 12.5, 999, 1500, 59_900, 65_000, 7_380_000)] == [
        "0 ms", "4 ms", "2.5 ms", "12 ms", "999 ms", "1.5 s", "59.9 s", "1m05s", "2h03m"]
    assert render.duration(None) == "-" and render.duration("soon") == "-" and render.duration(-1) == "-"


def test_missing_times_show_as_a_dash() -> None:
    assert render.when(None) == "-" and render.when(0) == "-"
    assert render.took(100, None) == "-"
    assert len(render.when(1_767_225_600_000)) == len("2026-01-01 00:00:00")


def test_control_characters_from_guests_are_escaped_but_lines_kept() -> None:
    assert render.clean("a\x1b[2Jb\x07\tc\nd\x9b") == "a\\x1b[2Jb\\x07\tc\nd\\x9b"


def test_long_outputs_are_cut_and_say_so() -> None:
    line = render.one_line({"text": "x" * 500})
    assert len(line) == render.STEP_OUTPUT_CHARS and line.endswith("…")
    lines = render.block(list(range(100)))
    assert len(lines) == render.FINAL_OUTPUT_LINES + 1 and "--json shows everything" in lines[-1]


def test_errors_read_as_name_and_message_whatever_their_shape() -> None:
    assert render.error_text({"name": "ValueError", "message": "bad"}) == "ValueError: bad"
    assert render.error_text({"message": "only a message"}) == "only a message"
    assert render.error_text("a plain string") == "a plain string"


def test_a_run_with_no_steps_yet_says_so() -> None:
    text = render.run_detail({"id": "r", "function": "a/b", "status": "queued", "steps": []})
    assert "steps     none yet" in text and "output" not in text


def test_a_replay_and_a_child_run_say_where_they_came_from() -> None:
    text = render.run_detail({"id": "r", "function": "a/b", "status": "queued", "replay_of": "r0",
                              "parent": {"run": "p1", "step": "s1"}})
    assert "replay of r0" in text and "parent    p1 (step s1)" in text


def test_the_functions_table_says_which_apps_reuse_their_guests() -> None:
    from runtime._cli_render import functions_table

    fns = [{"id": "bench/a", "triggers": [{"event": "x", "if": None}], "sandbox": "wasm",
            "target": {"kind": "python", "ref": "/apps/bench", "reuse": True}},
           {"id": "shop/b", "triggers": [], "sandbox": "docker", "target": {"kind": "python", "ref": "/apps/shop"}}]
    lines = functions_table(fns).splitlines()
    assert lines[1].endswith("wasm (reused guests)") and lines[2].endswith("docker")
