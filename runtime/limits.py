"""Defaults and limits a user can rely on (DESIGN §3.5). Sizes in bytes, times in ms."""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class RuntimeLimits:
    event_bytes: int = 512 * KiB
    request_bytes: int = 5 * MiB
    request_events: int = 5_000
    dedupe_window_ms: int = 24 * 3600 * 1000
    step_output_bytes: int = 4 * MiB
    run_state_bytes: int = 32 * MiB
    steps_per_run: int = 1_000
    step_timeout_ms: int = 5 * 60 * 1000
    step_timeout_cap_ms: int = 2 * 3600 * 1000
    retries: int = 3
    backoff_base_ms: int = 1_000
    backoff_cap_ms: int = 10 * 60 * 1000
