"""The `sluice` command line without a server: help text, option checks, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from runtime.cli import main


def invoke(*args: str, **kw: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), **kw)  # type: ignore[arg-type]
    return result.exit_code, result.stdout, result.stderr


def test_every_command_and_option_has_help_with_an_example() -> None:
    assert isinstance(main, click.Group)
    assert set(main.commands) >= {"send", "runs", "run", "events", "event", "dev", "node"}
    for name, command in main.commands.items():
        code, out, _ = invoke(name, "--help")
        assert code == 0, name
        assert f"sluice {name}" in out, f"`sluice {name} --help` shows no example"
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"sluice {name} {param.opts[0]} has no help text"
    code, out, _ = invoke("--help")
    assert code == 0 and "sluice send" in out and "SLUICE_URL" in out


def test_version_prints_the_package_version() -> None:
    code, out, _ = invoke("--version")
    assert code == 0 and out.startswith("sluice ")


def test_send_with_bad_json_names_data_and_sends_nothing() -> None:
    # Port 9 on loopback: if anything were sent, the error would be "cannot reach", not exit 2.
    code, _, err = invoke("--url", "http://127.0.0.1:9", "send", "a/b", "--data", "{not json")
    assert code == 2
    assert "--data" in err and "not valid JSON" in err


def test_send_with_data_that_is_not_an_object_is_refused() -> None:
    code, _, err = invoke("send", "a/b", "--data", "[1, 2]")
    assert code == 2 and "--data" in err and "must be a JSON object" in err


def test_send_reads_data_from_a_file_and_names_a_missing_one(tmp_path: Path) -> None:
    code, _, err = invoke("send", "a/b", "--data", f"@{tmp_path / 'nope.json'}")
    assert code == 2 and "cannot read" in err and "nope.json" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    code, _, err = invoke("send", "a/b", "--data", f"@{bad}")
    assert code == 2 and f"--data @{bad}" in err


def test_a_url_that_is_not_http_is_refused_by_name() -> None:
    code, _, err = invoke("--url", "localhost:8288", "runs")
    assert code == 2 and "--url" in err and "http://" in err


def test_runs_refuses_an_unknown_status_and_a_limit_out_of_range() -> None:
    code, _, err = invoke("runs", "--status", "exploded")
    assert code == 2 and "--status" in err
    code, _, err = invoke("runs", "--limit", "0")
    assert code == 2 and "--limit" in err
    code, _, err = invoke("runs", "--limit", "1001")
    assert code == 2 and "--limit" in err


def test_dev_refuses_a_missing_app_directory(tmp_path: Path) -> None:
    code, _, err = invoke("dev", str(tmp_path / "nowhere"))
    assert code == 2 and "APP" in err and "does not exist" in err


def test_dev_refuses_a_file_as_app(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("")
    code, _, err = invoke("dev", str(app))
    assert code == 2 and "is a file" in err


def test_dev_refuses_a_bad_sandbox_and_port(tmp_path: Path) -> None:
    code, _, err = invoke("dev", str(tmp_path), "--sandbox", "vm")
    assert code == 2 and "--sandbox" in err
    code, _, err = invoke("dev", str(tmp_path), "--port", "70000")
    assert code == 2 and "--port" in err


def test_node_needs_nats() -> None:
    code, _, err = invoke("node", env={"SLUICE_NATS": None})
    assert code == 2 and "--nats" in err


def test_node_refuses_unknown_roles_and_history_urls() -> None:
    code, _, err = invoke("node", "--nats", "nats://127.0.0.1:4222", "--roles", "api,bogus")
    assert code == 2 and "--roles" in err and "api,scheduler,executor" in err
    code, _, err = invoke("node", "--nats", "nats://127.0.0.1:4222", "--roles", ",")
    assert code == 2 and "--roles" in err
    code, _, err = invoke("node", "--nats", "nats://127.0.0.1:4222", "--history", "postgresql://u:pw@db/x")
    assert code == 2 and "--history" in err and "pw" not in err


def test_node_refuses_a_nats_url_that_is_not_one() -> None:
    code, _, err = invoke("node", "--nats", "127.0.0.1:4222")
    assert code == 2 and "--nats" in err and "nats://host:port" in err


def test_node_refuses_a_missing_app_directory(tmp_path: Path) -> None:
    code, _, err = invoke("node", "--nats", "nats://127.0.0.1:4222", "--app", str(tmp_path / "nowhere"))
    assert code == 2 and "--app" in err


def test_the_cli_starts_without_importing_the_runtime() -> None:
    """Client commands stay fast: no NATS, wasmtime or Docker client on import."""
    code = ("import sys, runtime.cli; heavy = [m for m in ('nats', 'wasmtime', 'docker', 'runtime.node', "
            "'runtime.devserver', 'aiohttp') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_node_refuses_executors_it_cannot_run() -> None:
    nats = ("--nats", "nats://127.0.0.1:4222")
    code, _, err = invoke("node", *nats, "--roles", "api,scheduler", "--executors", "1")
    assert code == 2 and "--executors" in err and "executor role" in err
    code, _, err = invoke("node", "--nats", "memory://", "--executors", "1")
    assert code == 2 and "--executors" in err and "memory://" in err
    code, _, err = invoke("node", *nats, "--history", "sqlite://:memory:", "--executors", "2")
    assert code == 2 and "--executors" in err and ":memory:" in err
    code, _, err = invoke("node", *nats, "--executors", "-1")
    assert code == 2 and "--executors" in err
    code, _, err = invoke("dev", "--executors", "65")
    assert code == 2 and "--executors" in err
