"""The hostile-guest suite's fixtures, and its results table.

Set ``SLUICE_HOSTILE_TABLE=path.md`` to have the run write a Markdown table: one row per
attack, one column per sandbox kind, each cell how the attack ended (``xfail`` marks a
known sandbox bug that lets it through).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

# Before the imports: pytest rewrites asserts only in modules registered before they load.
pytest.register_assert_rewrite("tests.hostile.fixtures", "tests.conformance.sandbox")

from tests.hostile.fixtures import guest, hostile_wasm_cache  # noqa: E402, F401
from tests.sandboxes.docker_fixtures import docker_engine  # noqa: E402, F401

KINDS = ("docker-runc", "docker-runsc", "wasm-python", "wasm-module")
_cells: dict[str, dict[str, str]] = defaultdict(dict)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.nodeid.startswith("tests/hostile/") or "[" not in report.nodeid:
        return
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    case, _, params = report.nodeid.rpartition("[")
    params = params.rstrip("]")
    kind = next((k for k in KINDS if params.endswith(k)), params)
    variant = params.removesuffix(kind).rstrip("-")
    name = case.rsplit("::", 1)[-1].removeprefix("test_").replace("_", " ")
    if variant:
        name = f"{name} [{variant}]"
    notes = [str(v) for k, v in report.user_properties if k == "outcome"]
    if hasattr(report, "wasxfail"):
        status = "XFAIL (known bug)"
    elif report.skipped:
        status = "skipped"
    elif report.failed:
        status = "FAILED"
    else:
        status = ""
    text = " / ".join(n.replace("|", "\\|").replace("\n", " ")[:300] for n in notes)
    _cells[name][kind] = f"{status} {text}".strip() or "passed"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("SLUICE_HOSTILE_TABLE")
    if not path or not _cells:
        return
    lines = ["| attack | " + " | ".join(KINDS) + " |", "|---" * (len(KINDS) + 1) + "|"]
    for name in sorted(_cells):
        row = _cells[name]
        lines.append(f"| {name} | " + " | ".join(row.get(k, "n/a") for k in KINDS) + " |")
    Path(path).write_text("\n".join(lines) + "\n")
