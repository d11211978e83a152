"""Defaults and limits a user can rely on (DESIGN §3.5). Sizes in bytes, times in ms."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

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

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RuntimeLimits:
        """Defaults, overridden by ``SLUICE_<FIELD>`` variables (e.g. ``SLUICE_RETRIES=5``,
        ``SLUICE_BACKOFF_BASE_MS=0``); a value that is not a non-negative integer is an error."""
        env = os.environ if environ is None else environ
        changes: dict[str, int] = {}
        for f in fields(cls):
            raw = env.get(f"SLUICE_{f.name.upper()}")
            if raw is None:
                continue
            try:
                value = int(raw)
            except ValueError:
                value = -1
            if value < 0:
                raise ValueError(f"SLUICE_{f.name.upper()} must be a non-negative integer, not {raw!r}")
            changes[f.name] = value
        return replace(cls(), **changes)
