"""Durable pull consumers of the memory bus: delivery state per (stream, durable).

The state outlives any one :class:`MemoryConsumer`, so binding the same durable again
resumes where the last one stopped, as on NATS. Delivery order is by stream sequence
(redeliveries included); times are the bus clock's (Unix seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bus._names import subject_matches
from bus.base import BusError, ConsumerSpec, Message

if TYPE_CHECKING:
    from bus.memory import MemoryBus, Stored, Stream


@dataclass
class Durable:
    spec: ConsumerSpec
    floor: int = 0  # every seq <= floor is done (acked or termed)
    done: set[int] = field(default_factory=set)  # done seqs above the floor
    deliveries: dict[int, int] = field(default_factory=dict)  # seq -> times delivered
    pending: dict[int, float] = field(default_factory=dict)  # seq -> ack deadline
    not_before: dict[int, float] = field(default_factory=dict)  # seq -> nak delay end

    def finish(self, seq: int) -> None:
        self.pending.pop(seq, None)
        self.not_before.pop(seq, None)
        self.deliveries.pop(seq, None)
        if seq > self.floor:
            self.done.add(seq)
        while self.floor + 1 in self.done:
            self.floor += 1
            self.done.discard(self.floor)

    def wants(self, msg: Stored) -> bool:
        pattern = self.spec.filter_subject
        return pattern is None or subject_matches(pattern, msg.subject)


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, stream: Stream, durable: Durable) -> None:
        self._bus = bus
        self._stream = stream
        self._durable = durable
        self._closed = False

    async def fetch(self, batch: int, timeout_s: float) -> list[Message]:
        if batch < 1:
            raise BusError(f"fetch batch must be at least 1, got {batch}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        while True:
            self._check_open()
            changed = self._bus.changed
            now = self._bus.clock()
            msgs, next_due = self._take(batch, now)
            if msgs:
                return msgs
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            wait = remaining if next_due is None else min(remaining, max(next_due - now, 0.001))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)

    def _take(self, batch: int, now: float) -> tuple[list[Message], float | None]:
        """Up to ``batch`` deliverable messages, and the earliest time another may become so."""
        durable, spec = self._durable, self._durable.spec
        self._stream.expire(now)
        for seq in [s for s, d in durable.pending.items() if d <= now]:
            del durable.pending[seq]  # ack wait passed: deliverable again
        out: list[Message] = []
        next_due: float | None = None

        def due(at: float) -> None:
            nonlocal next_due
            next_due = at if next_due is None else min(next_due, at)

        for deadline in durable.pending.values():
            due(deadline)
        room = spec.max_ack_pending - len(durable.pending)
        messages = self._stream.messages
        for seq in range(durable.floor + 1, self._stream.last_seq + 1):
            if len(out) >= min(batch, room):
                break
            msg = messages.get(seq)
            if msg is None:
                # Gone from the stream (work queue ack, max age): nothing left to deliver.
                if seq not in durable.pending:
                    durable.finish(seq)
                continue
            if not durable.wants(msg):
                durable.finish(seq)  # never for this consumer: let its floor move past it
                continue
            if seq in durable.done or seq in durable.pending:
                continue
            if msg.available_at > now:
                due(msg.available_at)
                continue
            hold = durable.not_before.get(seq)
            if hold is not None and hold > now:
                due(hold)
                continue
            count = durable.deliveries.get(seq, 0)
            if spec.max_deliver != -1 and count >= spec.max_deliver:
                continue
            durable.deliveries[seq] = count + 1
            durable.not_before.pop(seq, None)
            durable.pending[seq] = now + spec.ack_wait_s
            out.append(MemoryMessage(self, msg, count + 1))
        return out, next_due

    def settle(self, seq: int, how: str, delay_s: float | None = None) -> None:
        """Apply an ack, nak, in-progress or term from a delivered message."""
        durable, now = self._durable, self._bus.clock()
        if how == "progress":
            if seq in durable.pending:
                durable.pending[seq] = now + durable.spec.ack_wait_s
            return
        if how == "nak":
            durable.pending.pop(seq, None)
            durable.not_before[seq] = now + (delay_s or 0.0)
        else:  # ack or term: never again; a work queue forgets the message
            durable.finish(seq)
            if self._stream.spec.work_queue:
                self._stream.messages.pop(seq, None)
        self._bus.notify()

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"consumer {self._durable.spec.durable!r} is closed")
        self._bus.check_open()

    async def close(self) -> None:
        self._closed = True


class MemoryMessage:
    def __init__(self, consumer: MemoryConsumer, stored: Stored, num_delivered: int) -> None:
        self._consumer = consumer
        self._seq = stored.seq
        self._subject = stored.subject
        self._data = stored.data
        self._headers = dict(stored.headers)
        self._num_delivered = num_delivered

    @property
    def subject(self) -> str:
        return self._subject

    @property
    def data(self) -> bytes:
        return self._data

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def num_delivered(self) -> int:
        return self._num_delivered

    async def ack(self) -> None:
        self._consumer.settle(self._seq, "ack")

    async def nak(self, delay_s: float | None = None) -> None:
        self._consumer.settle(self._seq, "nak", delay_s)

    async def in_progress(self) -> None:
        self._consumer.settle(self._seq, "progress")

    async def term(self) -> None:
        self._consumer.settle(self._seq, "term")
