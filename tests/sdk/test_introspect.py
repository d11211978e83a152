"""`introspect` describes the app from inside the sandbox without calling any function."""

from pathlib import Path

import pytest

from sluice.protocol import ProtocolError, decode_introspection

from .harness import run_shim, write_app

APP = """
    import sluice

    app = sluice.App("shop")

    @app.function(id="onboard", trigger=sluice.event("user/signup", if_="event.data.plan == 'pro'"),
                  retries=5, timeout="10m", name="Onboard a user")
    def onboard(ctx):
        raise SystemExit("introspect must never call a function")

    @app.function(id="audit", trigger=[sluice.event("user/signup"), sluice.event("user/deleted")])
    def audit(ctx):
        raise SystemExit("introspect must never call a function")
"""


def test_introspect_lists_every_function_with_its_options(tmp_path: Path) -> None:
    result = run_shim(write_app(tmp_path, APP), {"v": 1, "kind": "introspect"})
    assert result.code == 0, result.stderr
    assert decode_introspection(result.stdout) == {"v": 1, "app": "shop", "functions": [
        {"id": "onboard", "name": "Onboard a user", "retries": 5, "timeout_ms": 600_000,
         "triggers": [{"event": "user/signup", "if": "event.data.plan == 'pro'"}]},
        {"id": "audit", "name": "audit", "retries": 3, "timeout_ms": None,
         "triggers": [{"event": "user/signup", "if": None}, {"event": "user/deleted", "if": None}]},
    ]}


def test_an_entry_point_names_the_module_and_attribute(tmp_path: Path) -> None:
    write_app(tmp_path, APP.replace('sluice.App("shop")', 'sluice.App("other")'), name="service.py")
    result = run_shim(tmp_path, {"v": 1, "kind": "introspect"}, "--entry", "service:app")
    assert result.code == 0, result.stderr
    assert result.response["app"] == "other"
    result = run_shim(tmp_path, {"v": 1, "kind": "introspect"}, "--entry", "service")
    assert result.response["app"] == "other"


def test_sibling_modules_can_import_the_app_module(tmp_path: Path) -> None:
    write_app(tmp_path, """
        import sluice
        app = sluice.App("split")
        import tasks  # registers its functions on this app
    """)
    write_app(tmp_path, """
        from app import app

        @app.function(id="from-sibling")
        def f(ctx):
            return 1
    """, name="tasks.py")
    result = run_shim(tmp_path, {"v": 1, "kind": "introspect"})
    assert [f["id"] for f in result.response["functions"]] == ["from-sibling"], result.stderr


@pytest.mark.parametrize(("source", "message"), [
    ("import sluice\nx = 1\n", "defines no sluice.App"),
    ("import sluice\na = sluice.App('a')\nb = sluice.App('b')\n", "defines 2 sluice.App instances (a, b)"),
    ("import sluice\napp = sluice.App('a')\n1 / 0\n", "ZeroDivisionError: division by zero"),
    ("import sluice\napp = sluice.App('Bad Id')\n", "ValueError: bad app id 'Bad Id'"),
    ("def broken(:\n", "SyntaxError"),
    ("import no_such_module_here\n", "ModuleNotFoundError"),
    ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
])
def test_an_app_that_fails_to_load_answers_with_a_non_retriable_error(
        tmp_path: Path, source: str, message: str) -> None:
    app_dir = write_app(tmp_path, source)
    for request in ({"v": 1, "kind": "call", "function": "f"}, {"v": 1, "kind": "introspect"}):
        result = run_shim(app_dir, request)
        assert result.code == 0, result.stderr
        (op,) = result.response["ops"]
        assert op["op"] == "error" and op["retriable"] is False
        assert op["error"]["name"] == "AppLoadError"
        assert op["error"]["message"].startswith("failed to load app: ")
        assert message in op["error"]["message"]
        assert message in result.stderr
    with pytest.raises(ProtocolError, match="the guest reported AppLoadError: failed to load app"):
        decode_introspection(result.stdout)  # the host's check names the guest's reason


def test_a_missing_app_file_is_named(tmp_path: Path) -> None:
    result = run_shim(tmp_path, {"v": 1, "kind": "introspect"})
    assert result.op["error"]["message"] == f"failed to load app: {tmp_path / 'app.py'} not found " \
        "(an app directory needs app.py, or pass --entry module:attr)"
