"""JetStream stream configs for :class:`bus.base.StreamSpec`, and what the driver reads back.

A stream that allows schedules also holds ``_sluice.sched.<STREAM>.>``, where delayed
messages wait (see :mod:`bus.nats`); :class:`StreamFacts` lists the caller's subjects
without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bus.base import StreamSpec

SCHED_PREFIX = "_sluice.sched"
_NS = 1_000_000_000


def stream_config(spec: StreamSpec, replicas: int) -> dict[str, Any]:
    """The JSON config for ``$JS.API.STREAM.CREATE``/``UPDATE`` (durations in nanoseconds)."""
    subjects = list(spec.subjects)
    if spec.allow_schedules:
        subjects.append(f"{SCHED_PREFIX}.{spec.name}.>")
    config: dict[str, Any] = {
        "name": spec.name,
        "subjects": subjects,
        "retention": "workqueue" if spec.work_queue else "limits",
        "storage": "file",
        "num_replicas": replicas,
        "discard": "old",
        "duplicate_window": int(spec.dedupe_window_s * _NS),
        "max_age": int(spec.max_age_s * _NS) if spec.max_age_s is not None else 0,
        # Atomic batches (nats-server 2.12+): publish_many sends long runs of messages as
        # one, acknowledged once (see bus._nats_publish).
        "allow_atomic": True,
    }
    if spec.allow_schedules:
        # Not in nats-py 2.16's StreamConfig: the reason streams go through the raw API.
        config["allow_msg_schedules"] = True
    return config


@dataclass(frozen=True)
class StreamFacts:
    """What the driver needs to know about a stream, from its live config."""

    name: str
    subjects: tuple[str, ...]  # the caller's subjects, without the schedule subject
    work_queue: bool
    allow_schedules: bool
    allow_atomic: bool = False

    @property
    def sched_subject(self) -> str:
        return f"{SCHED_PREFIX}.{self.name}.>"


def stream_facts(config: Mapping[str, Any]) -> StreamFacts:
    name = str(config["name"])
    prefix = f"{SCHED_PREFIX}.{name}."
    return StreamFacts(
        name=name,
        subjects=tuple(s for s in config.get("subjects", []) if not s.startswith(prefix)),
        work_queue=config.get("retention") == "workqueue",
        allow_schedules=bool(config.get("allow_msg_schedules")),
        allow_atomic=bool(config.get("allow_atomic")),
    )
