"""How the runtime uses the bus: stream names, subjects, consumers, buckets.

One place, so the scheduler, executor and API agree, and a reader can see every
NATS object Sluice creates.
"""

from __future__ import annotations

import hashlib

from bus import ConsumerSpec, OutMsg, StreamSpec
from runtime.limits import RuntimeLimits
from sluice.protocol import pack

EVENTS_STREAM = "SLUICE_EVENTS"
EVENTS_SUBJECTS = "sluice.events.>"
STEPS_STREAM = "SLUICE_STEPS"
STEPS_SUBJECT = "sluice.steps.run"
RUNS_BUCKET = "sluice-runs"
WAITS_BUCKET = "sluice-waits"
CANCELS_BUCKET = "sluice-cancels"


def name_token(event_name: str) -> str:
    """A subject-safe token for an event name (names may hold any character)."""
    return hashlib.sha1(event_name.encode("utf-8")).hexdigest()[:16]


def event_subject(event_name: str) -> str:
    """Each event name has its own subject, so waits can read back recent events by name."""
    return f"sluice.events.{name_token(event_name)}"


def event_message(event: dict[str, object]) -> OutMsg:
    """The message that stores ``event``: its id is the dedupe key."""
    return OutMsg(subject=event_subject(str(event["name"])), data=pack(event), msg_id=str(event["id"]))

# Slack on top of the longest step a job can stand for, so a slow step is never
# redelivered while it still runs (short ack waits cause duplicate executions).
ACK_WAIT_SLACK_S = 60.0


def events_stream(limits: RuntimeLimits) -> StreamSpec:
    # Keyed by event id within the dedupe window: the same id twice is one event.
    return StreamSpec(
        name=EVENTS_STREAM,
        subjects=[EVENTS_SUBJECTS],
        dedupe_window_s=limits.dedupe_window_ms / 1000,
        max_age_s=7 * 24 * 3600,
        allow_schedules=True,  # cron ticks are events held back until their time
    )


def steps_stream(limits: RuntimeLimits) -> StreamSpec:
    # A work queue: each job is one sandbox call for one run; removed once acked.
    return StreamSpec(
        name=STEPS_STREAM,
        subjects=["sluice.steps.>"],
        work_queue=True,
        dedupe_window_s=limits.step_timeout_cap_ms / 1000 + ACK_WAIT_SLACK_S,
        allow_schedules=True,
    )


def scheduler_consumer() -> ConsumerSpec:
    return ConsumerSpec(stream=EVENTS_STREAM, durable="scheduler", ack_wait_s=60.0)


def executor_consumer(limits: RuntimeLimits) -> ConsumerSpec:
    return ConsumerSpec(
        stream=STEPS_STREAM,
        durable="executor",
        filter_subject=STEPS_SUBJECT,
        ack_wait_s=limits.step_timeout_cap_ms / 1000 + ACK_WAIT_SLACK_S,
    )
