"""Under the WASM sandbox (CPython-on-WASI), an event starts exactly the functions whose
trigger and `if` match, and a three-step run completes with every step output recorded."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.harness import DevServer
from tests.e2e.scenarios import order_scenario


def test_order_events_start_the_right_functions_and_complete_under_wasm(
    dev_server: Callable[..., DevServer],
) -> None:
    order_scenario(dev_server(expect_functions=3))
