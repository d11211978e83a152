"""The peer benchmark's workload on Sluice: three no-op steps, the first recording when it started.

``bench/three-steps`` is the measured function; ``bench/other`` is the same work under
another event name, used to check that one function's burst does not starve another's
runs. Each returns ``{"t0": <first step's time.time()>, "t2": <last step's>}`` so the
driver reads the first step's start from the run's output (the guest clock is the host's).
"""

import time

import sluice

app = sluice.App("bench", reuse_instances=True)


def first() -> float:
    return time.time()


def noop() -> None:
    return None


def last() -> float:
    return time.time()


def three_steps(ctx: sluice.Context) -> dict[str, float]:
    t0 = ctx.step.run("first", first)
    ctx.step.run("second", noop)
    t2 = ctx.step.run("third", last)
    return {"t0": t0, "t2": t2}


app.function(id="three-steps", trigger=sluice.event("bench/three-steps"), retries=0)(three_steps)
app.function(id="other", trigger=sluice.event("bench/other"), retries=0)(three_steps)
