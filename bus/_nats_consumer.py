"""Durable pull consumers on JetStream, with fetch semantics nats-py's ``fetch`` lacks.

nats-py's ``PullSubscription.fetch(batch, timeout)``, once it long-polls, holds the
first message until the batch fills or the timeout ends. :meth:`NatsConsumer.fetch`
returns as soon as it has something: it asks with ``no_wait`` for what is there now;
if nothing, it long-polls for *one* message, then asks with ``no_wait`` for the rest.
So no pull request stays open to capture messages nobody is waiting for, except in a
race at a long poll's expiry; such a late message waits in this consumer's queue for
the next ``fetch`` (or is nak'ed on ``close``). A ``fetch`` that is cancelled puts what
it had taken back in that queue too, so a caller may stop a long poll at any time.

Measured on nats-server 2.15: a ``no_wait`` pull that hits ``max_ack_pending`` is not
answered "no messages"; it stays open until room frees up. So after the first message
of a ``no_wait`` pull, ``fetch`` waits only :data:`BURST_GAP_S` for each next one (the
server sends what it has back to back), and waits for the first only ``timeout_s``
(at least :data:`NO_WAIT_FLOOR_S`, one round trip with room to spare).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bus._names import RESERVED_HEADER_PREFIXES
from bus._nats_support import REF_HEADER, translate
from bus.base import BusError, ConsumerSpec, Message

if TYPE_CHECKING:
    from bus._nats_streams import StreamFacts
    from bus.nats import NatsBus

log = logging.getLogger("bus.nats")

_NS = 1_000_000_000
_HEARTBEAT = "100"
BURST_GAP_S = 0.02
NO_WAIT_FLOOR_S = 0.25


class NatsConsumer:
    def __init__(
        self, bus: NatsBus, nc: Any, facts: StreamFacts, spec: ConsumerSpec, filters: list[str]
    ) -> None:
        self._bus = bus
        self._nc = nc
        self._facts = facts
        self._spec = spec
        self._filters = filters
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._sub: Any = None
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}"
        self._inbox = ""

    async def open(self) -> None:
        spec = self._spec
        config = ConsumerConfig(
            durable_name=spec.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=spec.ack_wait_s,
            max_deliver=spec.max_deliver,
            max_ack_pending=spec.max_ack_pending,
            filter_subject=self._filters[0] if len(self._filters) == 1 else None,
            filter_subjects=self._filters if len(self._filters) > 1 else None,
        )
        with translate(f"create consumer {spec.durable!r} on stream {spec.stream!r}"):
            await self._bus.jetstream.add_consumer(spec.stream, config)
            self._inbox = self._nc.new_inbox()
            self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)

    async def _on_msg(self, msg: Any) -> None:
        self._queue.put_nowait(msg)

    async def fetch(self, batch: int, timeout_s: float) -> list[Message]:
        if batch < 1:
            raise BusError(f"fetch batch must be at least 1, got {batch}")
        if self._sub is None:
            raise BusError(f"consumer {self._spec.durable!r} is closed")
        self._bus.check_open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        got: list[Any] = []
        try:
            got += self._drain(batch)
            if not got:
                await self._pull(batch, max(deadline, loop.time() + NO_WAIT_FLOOR_S), no_wait=True, out=got)
            if not got and deadline - loop.time() > 0.01:
                await self._pull(1, deadline, no_wait=False, out=got)
                if got and batch > 1:
                    await self._pull(batch - 1, loop.time() + NO_WAIT_FLOOR_S, no_wait=True, out=got)
            return await self._wrap(got)
        except asyncio.CancelledError:
            # Cancelled (a caller stopping): what this fetch took goes back to the queue, for
            # the next fetch or for close() to nak, instead of waiting out its ack wait.
            for msg in got:
                self._queue.put_nowait(msg)
            raise

    def _drain(self, batch: int) -> list[Any]:
        """Messages already here (late answers to an earlier pull); stale statuses dropped."""
        out: list[Any] = []
        while len(out) < batch and not self._queue.empty():
            msg = self._queue.get_nowait()
            if not _status(msg):
                out.append(msg)
        return out

    async def _pull(self, batch: int, deadline: float, *, no_wait: bool, out: list[Any]) -> None:
        """Ask for ``batch`` messages and append what comes to ``out`` (as it comes, so a
        cancelled caller still holds every message taken off the queue)."""
        loop = asyncio.get_running_loop()
        request: dict[str, Any] = {"batch": batch}
        if no_wait:
            request["no_wait"] = True
        else:
            # Expire a little before we stop waiting, so the server's 408 ends the wait.
            remaining = deadline - loop.time()
            request["expires"] = int((remaining - min(0.05, remaining / 10)) * _NS)
        with translate(f"fetch from consumer {self._spec.durable!r}"):
            await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)
        taken = 0
        while taken < batch:
            wait = deadline - loop.time()
            if taken and no_wait:
                wait = min(wait, BURST_GAP_S)
            if wait <= 0:
                break
            msg = await self._next(wait)
            if msg is None:
                break
            status = _status(msg)
            if status == _HEARTBEAT:
                continue
            if status:  # 404 no messages, 408 expired, 409 limits: this pull is over
                break
            out.append(msg)
            taken += 1

    async def _next(self, wait: float) -> Any:
        """The next message in the queue, or ``None`` after ``wait`` seconds. Being cancelled
        never loses one (``asyncio.wait_for`` on 3.11 can drop a result it races with)."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        getter = asyncio.ensure_future(self._queue.get())
        try:
            await asyncio.wait({getter}, timeout=wait)
        except asyncio.CancelledError:
            if getter.done() and not getter.cancelled():
                self._queue.put_nowait(getter.result())
            getter.cancel()
            raise
        if getter.done():
            return getter.result()
        getter.cancel()  # an item that arrives now stays in the queue (Queue.get's own guarantee)
        return None

    async def _wrap(self, msgs: list[Any]) -> list[Message]:
        payloads = await asyncio.gather(*(self._resolve(m) for m in msgs))
        pairs = zip(msgs, payloads, strict=True)
        return [NatsMessage(self, m, data) for m, data in pairs if data is not None]

    async def _resolve(self, msg: Any) -> bytes | None:
        ref = (msg.headers or {}).get(REF_HEADER)
        if ref is None:
            return bytes(msg.data)
        try:
            return await self._bus.payloads.get(ref)
        except BusError as err:
            # Its payload is gone: deliveries can never succeed, so stop them.
            log.error("terminating message %s: its payload %s cannot be read: %s", msg.subject, ref, err)
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await msg.term()
            return None

    async def send(self, msg: Any, payload: bytes, what: str) -> None:
        """A fire-and-forget reply to JetStream about ``msg`` (nak, in progress)."""
        with translate(f"{what} message on {msg.subject!r}"):
            await self._nc.publish(msg.reply, payload)

    async def settle(self, msg: Any, how: bytes) -> None:
        """Send ``+ACK`` or ``+TERM``. A work-queue message with a stored payload is settled
        with a confirmed request, then its payload deleted (the stream forgets the message)."""
        ref = (msg.headers or {}).get(REF_HEADER)
        what = f"{how.decode()} message on {msg.subject!r}"
        with translate(what):
            if ref is None or not self._facts.work_queue:
                await self._nc.publish(msg.reply, how)
                return
            await self._nc.request(msg.reply, how, timeout=5.0)
        await self._bus.payloads.delete(ref)

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is None:
            return
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await sub.unsubscribe()
            # Hand back what arrived for nobody, rather than wait out its ack wait.
            for msg in self._drain(self._queue.qsize()):
                await msg.nak()


def _status(msg: Any) -> str | None:
    headers = msg.headers
    return headers.get("Status") if headers else None


class NatsMessage:
    def __init__(self, consumer: NatsConsumer, msg: Any, data: bytes) -> None:
        self._consumer = consumer
        self._msg = msg
        self._data = data
        self._headers = {
            k: v for k, v in (msg.headers or {}).items() if not k.lower().startswith(RESERVED_HEADER_PREFIXES)
        }

    @property
    def subject(self) -> str:
        return str(self._msg.subject)

    @property
    def data(self) -> bytes:
        return self._data

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def num_delivered(self) -> int:
        return int(self._msg.metadata.num_delivered)

    async def ack(self) -> None:
        await self._consumer.settle(self._msg, b"+ACK")

    async def nak(self, delay_s: float | None = None) -> None:
        payload = b"-NAK"
        if delay_s:
            payload += b" " + json.dumps({"delay": int(delay_s * _NS)}).encode()
        await self._consumer.send(self._msg, payload, "nak")

    async def in_progress(self) -> None:
        await self._consumer.send(self._msg, b"+WPI", "mark in progress")

    async def term(self) -> None:
        await self._consumer.settle(self._msg, b"+TERM")
