from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT, DevServer


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[Callable[..., DevServer]]:
    """Start `sluice dev` on an app dir; every server started is stopped at the end."""
    started: list[DevServer] = []

    def start(app_dir: Path = ROOT / "examples", *, expect_functions: int = 1, **kw: object) -> DevServer:
        server = DevServer(app_dir, tmp_path / "data", **kw)  # type: ignore[arg-type]
        started.append(server)
        return server.start(expect_functions=expect_functions)

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip without a Docker engine on a laptop; fail under CI=true (it must be there)."""
    import os
    import subprocess

    ok = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode == 0
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail("no Docker engine answers `docker info` (CI=true): run scripts/docker-engine.sh")
        pytest.skip("no Docker engine")
