"""The executor's consumer never hands a step to a second executor while it can still run."""

from __future__ import annotations

from runtime.limits import RuntimeLimits
from runtime.registry import FunctionDef
from runtime.streams import executor_consumer, steps_stream


def test_the_executor_ack_wait_is_longer_than_the_longest_step_timeout() -> None:
    for limits in (RuntimeLimits(), RuntimeLimits(step_timeout_cap_ms=30_000), RuntimeLimits(step_timeout_ms=1)):
        assert executor_consumer(limits).ack_wait_s > limits.step_timeout_cap_ms / 1000
        longest = min(limits.step_timeout_ms, limits.step_timeout_cap_ms)  # what the registry allows
        assert executor_consumer(limits).ack_wait_s > longest / 1000


def test_job_dedupe_covers_the_whole_ack_wait() -> None:
    limits = RuntimeLimits()
    assert steps_stream(limits).dedupe_window_s >= executor_consumer(limits).ack_wait_s


def test_a_function_timeout_is_capped_at_the_step_timeout_cap() -> None:
    from runtime.registry import AppSource, Registry
    from sandboxes import Target

    limits = RuntimeLimits(step_timeout_cap_ms=60_000)
    reg = Registry({}, limits)
    src = AppSource(Target(kind="module", ref="x.wat"), "wasm")
    fn: FunctionDef = reg._function("a", {"id": "f", "triggers": [], "timeout_ms": 10**9}, src)
    assert fn.timeout_ms == 60_000
    assert executor_consumer(limits).ack_wait_s > fn.timeout_ms / 1000
