"""The example shop: what `sluice dev examples/shop` loads.

Pure Python (it runs in CPython-on-WASI too): no third-party imports, no network.
Try it: `sluice send shop/order.created --data '{"id": 7, "total": 150}'`.
"""

import sluice

app = sluice.App("shop")

# A tiny in-code catalogue stands in for a database (sandboxes have no network).
PRICES = {"tea": 4.5, "mug": 12.0, "kettle": 39.9}
STOCK = {"tea": 500, "mug": 40, "kettle": 3}


def validate(order):
    """Check the order and normalise its lines; a bad order will never get better."""
    if not isinstance(order.get("id"), int):
        raise sluice.NonRetriableError(f"order needs an integer 'id', got {order.get('id')!r}")
    items = order.get("items") or [{"sku": "tea", "qty": 1}]
    lines = []
    for item in items:
        sku, qty = item.get("sku"), int(item.get("qty", 1))
        if sku not in PRICES:
            raise sluice.NonRetriableError(f"order {order['id']}: unknown sku {sku!r}")
        if qty < 1:
            raise sluice.NonRetriableError(f"order {order['id']}: quantity of {sku} must be at least 1")
        lines.append({"sku": sku, "qty": qty, "unit_price": PRICES[sku]})
    total = order.get("total")
    if total is None:
        total = round(sum(line["qty"] * line["unit_price"] for line in lines), 2)
    return {"order_id": order["id"], "lines": lines, "total": total,
            "currency": order.get("currency", "EUR")}


def reserve_stock(order):
    reserved = []
    for line in order["lines"]:
        if STOCK[line["sku"]] < line["qty"]:
            raise sluice.RetryAfterError(f"{line['sku']} is out of stock", "1m")
        reserved.append({"sku": line["sku"], "qty": line["qty"]})
    return {"reservation_id": f"res-{order['order_id']}", "items": reserved}


def charge(order, reservation):
    amount_cents = round(order["total"] * 100)
    return {"charge_id": f"ch-{order['order_id']}-{amount_cents}", "amount_cents": amount_cents,
            "currency": order["currency"], "reservation_id": reservation["reservation_id"],
            "status": "succeeded"}


@app.function(id="process-order", trigger=sluice.event("shop/order.created"), retries=3, timeout="5m",
              name="Process an order")
def process_order(ctx: sluice.Context):
    ctx.log.info("processing order %s", ctx.event.data.get("id"))
    order = ctx.step.run("validate", validate, dict(ctx.event.data))
    reservation = ctx.step.run("reserve-stock", reserve_stock, order)
    payment = ctx.step.run("charge", charge, order, reservation)
    return {"order_id": order["order_id"], "total": order["total"], "payment": payment}


@app.function(id="vip-welcome", trigger=sluice.event("shop/order.created", if_="event.data.total > 100"),
              name="Welcome a big spender")
def vip_welcome(ctx: sluice.Context):
    order_id = ctx.event.data["id"]
    coupon = ctx.step.run("make-coupon", lambda: {"code": f"VIP-{order_id}", "percent_off": 10})
    return {"order_id": order_id, "coupon": coupon}


@app.function(id="send-receipt", trigger=sluice.event("shop/order.paid"), name="Send the receipt")
def send_receipt(ctx: sluice.Context):
    data = ctx.event.data
    receipt = ctx.step.run("render-receipt", lambda: {
        "to": data.get("email", "customer@example.com"),
        "subject": f"Your receipt for order {data.get('id')}",
        "body": f"We received {data.get('total', 0)} {data.get('currency', 'EUR')}. Thank you!",
    })
    return {"sent": True, "receipt": receipt}
