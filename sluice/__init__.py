"""Sluice SDK: write functions that run, step by step, in sandboxes.

```python
import sluice

app = sluice.App("shop")

@app.function(id="onboard", trigger=sluice.event("user/signup"), retries=3, timeout="10m")
def onboard(ctx: sluice.Context):
    account = ctx.step.run("create-account", create_account, ctx.event.data["id"])
    return {"account": account}
```

This package runs inside every sandbox, so it imports only the standard library and
``msgpack``. ``python -m sluice.shim`` is the guest side of the protocol (``sluice.protocol``).
"""

from sluice._app import App, Function, event
from sluice._context import Context, Logger
from sluice._cron import cron
from sluice._durations import parse_duration
from sluice._errors import NonRetriableError, RetryAfterError, StepError
from sluice._fetch import FetchResponse
from sluice._steps import Step

__version__ = "0.1.0"

__all__ = [
    "App",
    "Context",
    "FetchResponse",
    "Function",
    "Logger",
    "NonRetriableError",
    "RetryAfterError",
    "Step",
    "StepError",
    "cron",
    "event",
    "parse_duration",
]
