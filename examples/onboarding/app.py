"""Durable steps, by example: what `make dev` loads besides the shop.

Try it (with `make dev` running):
    sluice send user/signup --data '{"id": 1, "email": "ada@example.com", "plan": "pro"}'
    sluice runs                         # onboard is "waiting" for user/confirmed
    sluice send user/confirmed --data '{"id": 1}'
    sluice runs                         # onboard completed; welcome-pack ran in parallel branches
"""

import sluice

app = sluice.App("onboarding")


def create_account(user):
    return {"account_id": f"acct-{user['id']}", "email": user["email"]}


@app.function(id="onboard", trigger=sluice.event("user/signup"), retries=3, timeout="1h",
              cancel_on=[sluice.event("user/deleted", if_="async.data.id == event.data.id")])
def onboard(ctx: sluice.Context):
    account = ctx.step.run("create-account", create_account, dict(ctx.event.data))
    ctx.step.sleep("cool-off", "2s")
    confirmed = ctx.step.wait_for_event("confirm", event="user/confirmed",
                                        if_="async.data.id == event.data.id", timeout="10m")
    if confirmed is None:
        ctx.step.send_event("nudge", {"name": "user/nudge", "data": {"id": ctx.event.data["id"]}})
        return {"account": account, "confirmed": False}
    pack = ctx.step.invoke("welcome-pack", function="welcome-pack", data={"plan": ctx.event.data.get("plan")})
    return {"account": account, "confirmed": True, "welcome": pack}


@app.function(id="welcome-pack", trigger=sluice.event("onboarding/welcome-pack.requested"))
def welcome_pack(ctx: sluice.Context):
    plan = ctx.event.data.get("plan") or "free"
    guide, credits = ctx.step.parallel(
        ("guide", lambda: {"guide": f"getting-started-{plan}.pdf"}),
        ("credits", lambda: {"credits": 100 if plan == "pro" else 10}),
    )
    return {**guide, **credits}
