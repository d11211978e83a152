"""The same example app, unchanged, under the Docker sandbox."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.harness import DevServer
from tests.e2e.scenarios import order_scenario


@pytest.mark.docker
def test_order_events_start_the_right_functions_and_complete_under_docker(
    dev_server: Callable[..., DevServer], docker_engine: None,
) -> None:
    order_scenario(dev_server(expect_functions=3, sandbox="docker"))
