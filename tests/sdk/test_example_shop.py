"""examples/shop, the app the dev server loads, runs end to end under the shim."""

from .harness import REPO, drive, run_shim

SHOP = REPO / "examples" / "shop"


def test_the_shop_declares_its_three_functions_and_triggers() -> None:
    described = run_shim(SHOP, {"v": 1, "kind": "introspect"}).response["functions"]
    fns = {f["id"]: f["triggers"] for f in described}
    assert fns == {
        "process-order": [{"event": "shop/order.created", "if": None}],
        "vip-welcome": [{"event": "shop/order.created", "if": "event.data.total > 100"}],
        "send-receipt": [{"event": "shop/order.paid", "if": None}],
    }


def test_an_order_is_validated_reserved_and_charged() -> None:
    run = drive(SHOP, "process-order", {"name": "shop/order.created", "data": {"id": 7, "total": 150}})
    assert [op.get("name") for op in run.ops] == ["validate", "reserve-stock", "charge", None]
    # Three calls: the last step's call also carries the function's result.
    assert [[op["op"] for op in ops] for ops in run.calls] == [["step"], ["step"], ["step", "done"]]
    assert run.final["data"]["payment"]["amount_cents"] == 15000
    assert run.final["data"]["payment"]["charge_id"] == "ch-7-15000"


def test_an_order_for_an_unknown_item_fails_without_retries() -> None:
    run = drive(SHOP, "process-order", {"name": "shop/order.created",
                                        "data": {"id": 8, "items": [{"sku": "piano"}]}})
    assert run.ops[0]["op"] == "step_error" and run.ops[0]["retriable"] is False
    assert run.final["retriable"] is False
    assert "unknown sku 'piano'" in run.final["error"]["message"]


def test_vip_welcome_and_send_receipt_finish() -> None:
    vip = drive(SHOP, "vip-welcome", {"name": "shop/order.created", "data": {"id": 7, "total": 150}})
    assert vip.final["data"] == {"order_id": 7, "coupon": {"code": "VIP-7", "percent_off": 10}}
    receipt = drive(SHOP, "send-receipt", {"name": "shop/order.paid", "data": {"id": 7, "total": 150}})
    assert receipt.final["data"]["sent"] is True
    # A one-step function finishes in one call.
    assert [[op["op"] for op in ops] for ops in vip.calls] == [["step", "done"]]
    assert [[op["op"] for op in ops] for ops in receipt.calls] == [["step", "done"]]
