"""How the runtime uses the bus: stream names, subjects, consumers, buckets.

One place, so the scheduler, executor and API agree, and a reader can see every
NATS object Sluice creates.
"""

from __future__ import annotations

import functools
import hashlib

from bus import ConsumerSpec, OutMsg, StreamSpec
from runtime.limits import RuntimeLimits
from sluice.protocol import pack

EVENTS_STREAM = "SLUICE_EVENTS"
EVENTS_SUBJECTS = "sluice.events.>"
STEPS_STREAM = "SLUICE_STEPS"
# Each function's jobs have their own subject, JOBS_PREFIX.<name_token(app/fn)>, read by its
# own durable consumer, so the executor can take turns between functions (runtime/intake.py).
JOBS_PREFIX = "sluice.steps.run"
JOBS_SUBJECTS = f"{JOBS_PREFIX}.>"
# Where every job went before jobs were split by function: still drained, for an upgrade.
LEGACY_JOBS_SUBJECT = JOBS_PREFIX
RUNS_BUCKET = "sluice-runs"
WAITS_BUCKET = "sluice-waits"
CANCELS_BUCKET = "sluice-cancels"


# Memoized (bounded): an event name's token and subject are made for every event it names.
@functools.lru_cache(maxsize=4096)
def name_token(event_name: str) -> str:
    """A subject-safe token for an event name (names may hold any character)."""
    return hashlib.sha1(event_name.encode("utf-8")).hexdigest()[:16]


@functools.lru_cache(maxsize=4096)
def event_subject(event_name: str) -> str:
    """Each event name has its own subject, so waits can read back recent events by name."""
    return f"sluice.events.{name_token(event_name)}"


@functools.lru_cache(maxsize=4096)
def job_subject(function: str) -> str:
    """The subject of the jobs of ``function`` (its ``app/fn`` id)."""
    return f"{JOBS_PREFIX}.{name_token(function)}"


def event_message(event: dict[str, object]) -> OutMsg:
    """The message that stores ``event``: its id is the dedupe key."""
    return OutMsg(event_subject(str(event["name"])), pack(event), str(event["id"]))


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


def executor_consumer(limits: RuntimeLimits, subject: str = LEGACY_JOBS_SUBJECT) -> ConsumerSpec:
    """The durable consumer of the jobs on ``subject`` (a :func:`job_subject`), shared by every
    executor node: ``executor-<token>``; ``executor`` for the pre-split subject."""
    durable = "executor" if subject == LEGACY_JOBS_SUBJECT else "executor-" + subject.rsplit(".", 1)[1]
    return ConsumerSpec(
        stream=STEPS_STREAM,
        durable=durable,
        filter_subject=subject,
        ack_wait_s=limits.step_timeout_cap_ms / 1000 + ACK_WAIT_SLACK_S,
    )
