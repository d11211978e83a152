"""The in-process bus driver: NATS JetStream semantics without a server.

Product code, not a mock: ``sluice`` can run on it in one process, and it passes the
same conformance suite (``tests/conformance/bus.py``) as :mod:`bus.nats`. What it keeps:
streams bound to NATS-style subject patterns (``*``, ``>``), publish dedupe by
``msg_id`` within the stream's window, work-queue removal on ack, durable pull
consumers (ack wait, nak with delay, in progress, term, max deliver, max ack pending),
delayed delivery (``deliver_at``), and KV buckets with revisions and compare-and-set.
What it does not keep: anything across a process restart.

Time comes from ``clock`` (Unix seconds, default :func:`time.time`), so tests can move
it by hand; waiting in :meth:`Consumer.fetch` still uses the event loop's real time, at
most ``timeout_s`` seconds. ``inline_limit_bytes`` is accepted for parity with the NATS
driver; payloads of any size are simply kept in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bus._memory_consumer import Durable, MemoryConsumer
from bus._memory_kv import Bucket, MemoryKeyValue
from bus._names import (
    check_bucket_name,
    check_headers,
    check_read_since,
    check_readable,
    check_stream_name,
    check_subject,
    no_schedules,
    not_open,
    patterns_overlap,
    subject_matches,
)
from bus.base import (
    Bus,
    BusError,
    Consumer,
    ConsumerSpec,
    KeyValue,
    OutMsg,
    PubAck,
    StoredMessage,
    StreamSpec,
)


@dataclass
class Stored:
    """One message in a stream; ``available_at`` is when a consumer may first see it."""

    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]
    stored_at: float
    available_at: float


@dataclass
class Stream:
    spec: StreamSpec
    messages: dict[int, Stored] = field(default_factory=dict)
    last_seq: int = 0
    # msg_id -> (seq, when published); pruned as the window passes.
    seen_ids: dict[str, tuple[int, float]] = field(default_factory=dict)

    def holds(self, subject: str) -> bool:
        return any(subject_matches(p, subject) for p in self.spec.subjects)

    def expire(self, now: float) -> None:
        """Forget msg ids older than the dedupe window and messages older than ``max_age_s``.

        Both dicts are in arrival order, so this looks only at their expired front.
        """
        window = self.spec.dedupe_window_s
        while self.seen_ids:
            msg_id, (_, at) = next(iter(self.seen_ids.items()))
            if at + window > now:
                break
            del self.seen_ids[msg_id]
        if self.spec.max_age_s is not None:
            cutoff = now - self.spec.max_age_s
            while self.messages:
                seq, msg = next(iter(self.messages.items()))
                if msg.stored_at >= cutoff:
                    break
                del self.messages[seq]


class MemoryBus(Bus):
    """All state lives in this object; two ``MemoryBus`` instances share nothing."""

    def __init__(
        self, *, inline_limit_bytes: int = 900 * 1024, clock: Callable[[], float] = time.time
    ) -> None:
        if inline_limit_bytes <= 0:
            raise BusError(f"inline_limit_bytes must be positive, got {inline_limit_bytes}")
        self.inline_limit_bytes = inline_limit_bytes
        self.clock = clock
        self.streams: dict[str, Stream] = {}
        self._durables: dict[tuple[str, str], Durable] = {}
        self._buckets: dict[str, Bucket] = {}
        self._changed = asyncio.Event()
        self._state = "new"

    # lifecycle

    async def start(self) -> None:
        if self._state == "closed":
            raise BusError("the memory bus is closed; make a new one")
        self._state = "started"

    async def close(self) -> None:
        self._state = "closed"
        self.notify()

    async def __aenter__(self) -> MemoryBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def check_open(self) -> None:
        if self._state != "started":
            raise not_open(self._state)

    def notify(self) -> None:
        """Wake every waiting fetch: something may have become deliverable."""
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def changed(self) -> asyncio.Event:
        return self._changed

    # streams

    async def ensure_stream(self, spec: StreamSpec) -> None:
        self.check_open()
        check_stream_name(spec.name)
        if not spec.subjects:
            raise BusError(f"stream {spec.name!r} needs at least one subject")
        for subject in spec.subjects:
            check_subject(subject, wildcards=True)
        for other in self.streams.values():
            if other.spec.name == spec.name:
                continue
            for a in spec.subjects:
                for b in other.spec.subjects:
                    if patterns_overlap(a, b):
                        raise BusError(f"stream {spec.name!r}: subject {a!r} overlaps {b!r} "
                                       f"of stream {other.spec.name!r}")
        existing = self.streams.get(spec.name)
        if existing is None:
            self.streams[spec.name] = Stream(spec)
            return
        if existing.spec.work_queue != spec.work_queue:
            raise BusError(f"stream {spec.name!r}: its retention (work queue or not) cannot be changed")
        existing.spec = spec

    def stream_for(self, subject: str) -> Stream:
        for stream in self.streams.values():
            if stream.holds(subject):
                return stream
        raise BusError(f"no stream holds subject {subject!r}")

    # publishing

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        deliver_at: float | None = None,
    ) -> PubAck:
        self.check_open()
        check_subject(subject, wildcards=False)
        check_headers(headers)
        stream = self.stream_for(subject)
        if deliver_at is not None and not stream.spec.allow_schedules:
            raise no_schedules(stream.spec.name)
        now = self.clock()
        stream.expire(now)
        if msg_id is not None:
            seen = stream.seen_ids.get(msg_id)
            if seen is not None:
                return PubAck(stream=stream.spec.name, seq=seen[0], duplicate=True)
        stream.last_seq += 1
        seq = stream.last_seq
        available = max(now, deliver_at) if deliver_at is not None else now
        stream.messages[seq] = Stored(seq, subject, bytes(data), dict(headers or {}), now, available)
        if msg_id is not None:
            stream.seen_ids[msg_id] = (seq, now)
        self.notify()
        return PubAck(stream=stream.spec.name, seq=seq)

    async def publish_batch(self, msgs: Sequence[OutMsg]) -> list[PubAck]:
        return [
            await self.publish(m.subject, m.data, msg_id=m.msg_id, headers=m.headers, deliver_at=m.deliver_at)
            for m in msgs
        ]

    async def publish_many(self, msgs: Sequence[OutMsg]) -> list[PubAck | BusError]:
        self.check_open()
        out: list[PubAck | BusError] = []
        for m in msgs:
            try:
                out.append(await self.publish(m.subject, m.data, msg_id=m.msg_id, headers=m.headers,
                                              deliver_at=m.deliver_at))
            except BusError as err:
                out.append(err)
        return out

    # consumers and buckets

    async def consumer(self, spec: ConsumerSpec) -> Consumer:
        self.check_open()
        stream = self.streams.get(spec.stream)
        if stream is None:
            raise BusError(f"consumer {spec.durable!r}: no stream named {spec.stream!r}")
        check_stream_name(spec.durable)
        if spec.filter_subject is not None:
            check_subject(spec.filter_subject, wildcards=True)
        if spec.ack_wait_s <= 0 or spec.max_ack_pending <= 0 or spec.max_deliver == 0:
            raise BusError(f"consumer {spec.durable!r}: ack_wait_s and max_ack_pending must be positive, "
                           "max_deliver positive or -1")
        if stream.spec.work_queue:
            self._check_work_queue_filters(stream, spec)
        key = (spec.stream, spec.durable)
        durable = self._durables.get(key)
        if durable is None:
            durable = self._durables[key] = Durable(spec)
        else:
            durable.spec = spec
        return MemoryConsumer(self, stream, durable)

    def _check_work_queue_filters(self, stream: Stream, spec: ConsumerSpec) -> None:
        # A work queue hands each message to one consumer: NATS refuses overlapping filters.
        mine = spec.filter_subject or ">"
        for (name, durable_name), other in self._durables.items():
            if name != spec.stream or durable_name == spec.durable:
                continue
            theirs = other.spec.filter_subject or ">"
            if patterns_overlap(mine, theirs):
                raise BusError(
                    f"work-queue stream {stream.spec.name!r}: consumer {spec.durable!r} filter {mine!r} "
                    f"overlaps consumer {durable_name!r} ({theirs!r})"
                )

    async def kv(self, bucket: str) -> KeyValue:
        self.check_open()
        check_bucket_name(bucket)
        state = self._buckets.setdefault(bucket, Bucket())
        return MemoryKeyValue(self, bucket, state)

    # reading back

    async def read_since(
        self, stream: str, subject: str, since: float, *, limit: int = 1000
    ) -> list[StoredMessage]:
        """See :meth:`bus.base.Bus.read_since`. A delayed message counts as stored when it
        becomes due (as on NATS, where the server stores a copy then) and is unseen before."""
        self.check_open()
        check_read_since(subject, since, limit)
        found = self.streams.get(stream)
        if found is None:
            raise BusError(f"read_since: no stream named {stream!r}")
        check_readable(found.spec.name, found.spec.work_queue, found.spec.subjects, subject)
        now = self.clock()
        found.expire(now)
        hits = sorted(
            (m for m in found.messages.values()
             if since <= m.available_at <= now and subject_matches(subject, m.subject)),
            key=lambda m: (m.available_at, m.seq),
        )
        return [StoredMessage(m.subject, m.data, dict(m.headers), m.available_at, m.seq) for m in hits[:limit]]

    async def subject_counts(self, stream: str, subject: str) -> dict[str, int]:
        """See :meth:`bus.base.Bus.subject_counts`."""
        self.check_open()
        check_subject(subject, wildcards=True)
        found = self.streams.get(stream)
        if found is None:
            raise BusError(f"subject_counts: no stream named {stream!r}")
        now = self.clock()
        found.expire(now)
        counts: dict[str, int] = {}
        for m in found.messages.values():
            if m.available_at <= now and subject_matches(subject, m.subject):
                counts[m.subject] = counts.get(m.subject, 0) + 1
        return counts
