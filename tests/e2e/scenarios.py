"""Scenarios run under more than one sandbox (the same assertions, different wiring)."""

from __future__ import annotations

from tests.e2e.harness import DevServer


def order_scenario(dev: DevServer) -> None:
    """shop/order.created starts process-order (3 steps) always and vip-welcome only when
    total > 100; shop/order.paid starts only send-receipt."""
    [big] = dev.send({"name": "shop/order.created", "data": {"id": 7, "total": 150}})
    [small] = dev.send({"name": "shop/order.created", "data": {"id": 8, "total": 20}})

    big_runs = {r["function"]: r for r in dev.wait_runs_for(big, 2)}
    assert set(big_runs) == {"shop/process-order", "shop/vip-welcome"}
    order = big_runs["shop/process-order"]
    assert order["status"] == "completed", order
    completed = [s for s in order["steps"] if s["status"] == "completed"]
    assert len(completed) == 3
    assert len({s["step_id"] for s in completed}) == 3
    assert all(s["output"] is not None for s in completed)
    assert order["output"] is not None
    assert big_runs["shop/vip-welcome"]["status"] == "completed"

    small_runs = dev.wait_runs_for(small, 1)
    assert [r["function"] for r in small_runs] == ["shop/process-order"]

    [paid] = dev.send({"name": "shop/order.paid", "data": {"id": 7}})
    assert [r["function"] for r in dev.wait_runs_for(paid, 1)] == ["shop/send-receipt"]
