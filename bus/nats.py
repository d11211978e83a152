"""The NATS JetStream bus driver.

Streams are file-backed JetStream streams, created or updated through the raw
JetStream API (nats-py's ``StreamConfig`` has no field for message schedules).
Consumers are durable pull consumers with explicit acks; KV buckets are JetStream KV
(history 1). Connection loss is survived: the client reconnects forever (every 0.5 s);
calls made while disconnected fail with :class:`BusError` after the request timeout.

Delayed delivery (``deliver_at``) uses nats-server's message schedules (2.12+). A
stream with ``allow_schedules`` also holds the subjects ``_sluice.sched.<STREAM>.>``.
A delayed publish goes to ``_sluice.sched.<STREAM>.<uuid>`` with the headers
``Nats-Schedule: @at <RFC 3339 UTC, milliseconds>`` and ``Nats-Schedule-Target:
<subject>``; at that time the server publishes a copy (body and user headers, not the
``Nats-Msg-Id``) on the target subject and removes the schedule message. Measured on
nats-server 2.15: it fires within a few milliseconds of the requested time, and the
schedule survives a server restart because it is an ordinary stored message. The
server insists that the target is a subject of the *same* stream and differs from the
schedule's own subject. The schedule subjects are kept out of every consumer: a
consumer without ``filter_subject`` on such a stream is given the stream's own
subjects as filters, and a filter that would match ``_sluice.>`` is refused (on a work
queue, a consumer that acked a schedule message would delete the timer). A
``deliver_at`` that is not in the future publishes at once. ``msg_id`` dedupes the
schedule message itself.

Payloads over ``inline_limit_bytes`` travel by reference through the object store
(see :mod:`bus._nats_support`). When a work-queue message carrying one is acked or
termed, its object is deleted; on other streams, and for overwritten KV values, the
object stays (a known leak, bounded by how often large payloads are published there).

A :class:`BusError` from ``publish`` does not prove the message was not stored: a
publish made while disconnected is sent once the client reconnects, after its caller
was told it timed out. Retry with the same ``msg_id`` and the stream keeps one copy.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import nats.aio.client
import nats.errors
import nats.js.errors

from bus._names import (
    check_bucket_name,
    check_headers,
    check_stream_name,
    check_subject,
    no_schedules,
    not_open,
    patterns_overlap,
    subject_matches,
)
from bus._nats_consumer import NatsConsumer
from bus._nats_kv import NatsKeyValue
from bus._nats_publish import ATOMIC_MAX, FastPublisher
from bus._nats_read import read_since
from bus._nats_streams import SCHED_PREFIX, StreamFacts, stream_config, stream_facts
from bus._nats_support import REF_HEADER, Payloads, translate
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

log = logging.getLogger("bus.nats")

_STREAM_IN_USE = 10058  # JetStream: "stream name already in use with a different configuration"
_CHECKED_SUBJECTS_MAX = 10_000  # subjects publish_many has found valid (cleared when full)
ATOMIC_MIN = 64  # publish_many sends a run of this many messages or more as atomic batches


class NatsBus(Bus):
    """A bus on a NATS server or cluster. ``url`` may list several servers, comma-separated.

    ``inline_limit_bytes``: larger payloads go through the object store.
    ``replicas``: JetStream replicas for streams and buckets this bus creates (3 on a cluster).
    ``timeout_s``: how long one JetStream request may take before :class:`BusError`.
    ``connect_timeout_s``: how long ``start`` keeps trying to reach a server.
    """

    def __init__(
        self,
        url: str,
        *,
        inline_limit_bytes: int = 900 * 1024,
        name: str = "sluice",
        replicas: int = 1,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if inline_limit_bytes <= 0:
            raise BusError(f"inline_limit_bytes must be positive, got {inline_limit_bytes}")
        self.url = url
        self.inline_limit_bytes = inline_limit_bytes
        self._name = name
        self._replicas = replicas
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._nc: Any = None
        self._js: Any = None
        self._payloads: Payloads | None = None
        self._fast: FastPublisher | None = None
        # Subjects publish_many has found valid, with the stream taking atomic batches of them.
        self._checked_subjects: dict[str, str | None] = {}
        self._streams: dict[str, StreamFacts] = {}
        self._state = "new"

    # lifecycle

    async def start(self) -> None:
        if self._state == "started":
            return
        if self._state == "closed":
            raise BusError("the NATS bus is closed; make a new one")
        servers = [s.strip() for s in self.url.split(",") if s.strip()]
        nc = nats.aio.client.Client()
        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=servers, name=self._name, max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,  # type: ignore[arg-type]  # typed int, a float works
                    connect_timeout=2, error_cb=self._on_error, disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect,
                ),
                self._connect_timeout_s,
            )
        except (nats.errors.Error, TimeoutError, OSError) as err:
            await _close_quietly(nc)
            raise BusError(f"cannot connect to NATS at {self.url} within {self._connect_timeout_s:g} s: "
                           f"{type(err).__name__}: {err}") from err
        self._nc = nc
        self._js = nc.jetstream(timeout=self._timeout_s)
        self._payloads = Payloads(self._js, self._replicas)
        self._fast = FastPublisher(nc, self._timeout_s)
        self._state = "started"

    async def close(self) -> None:
        started = self._state == "started"
        self._state = "closed"
        if started and self._nc is not None:
            await _close_quietly(self._nc)

    async def __aenter__(self) -> NatsBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_error(self, err: Exception) -> None:
        log.warning("NATS connection error: %r", err)

    async def _on_disconnect(self) -> None:
        if self._state == "started":  # not our own close()
            log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnect(self) -> None:
        log.info("reconnected to NATS at %s", self._nc.connected_url.netloc if self._nc else "?")

    def check_open(self) -> None:
        if self._state != "started":
            raise not_open(self._state)

    @property
    def payloads(self) -> Payloads:
        self.check_open()
        assert self._payloads is not None
        return self._payloads

    # streams

    async def _api(self, what: str, subject: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One raw JetStream API request; the answer's ``error`` becomes a :class:`BusError`."""
        self.check_open()
        with translate(what):
            payload = json.dumps(body).encode() if body is not None else b""
            reply = await self._nc.request(f"$JS.API.{subject}", payload, timeout=self._timeout_s)
        answer: dict[str, Any] = json.loads(reply.data)
        error = answer.get("error")
        if error:
            detail = f"{error.get('description')} (code {error.get('err_code')})"
            raise BusError(f"{what}: JetStream refused: {detail}")
        return answer

    async def ensure_stream(self, spec: StreamSpec) -> None:
        self.check_open()
        check_stream_name(spec.name)
        if not spec.subjects:
            raise BusError(f"stream {spec.name!r} needs at least one subject")
        for subject in spec.subjects:
            check_subject(subject, wildcards=True)
        config = stream_config(spec, self._replicas)
        what = f"create stream {spec.name!r}"
        try:
            answer = await self._api(what, f"STREAM.CREATE.{spec.name}", config)
        except BusError as err:
            if f"(code {_STREAM_IN_USE})" not in str(err):
                raise
            answer = await self._api(f"update stream {spec.name!r}", f"STREAM.UPDATE.{spec.name}", config)
        self._streams[spec.name] = stream_facts(answer["config"])

    async def facts(self, name: str) -> StreamFacts:
        """The stream's subjects and kind (cached; read from the server the first time)."""
        facts = self._streams.get(name)
        if facts is None:
            check_stream_name(name)
            answer = await self._api(f"read stream {name!r}", f"STREAM.INFO.{name}")
            facts = self._streams[name] = stream_facts(answer["config"])
        return facts

    async def _stream_holding(self, subject: str) -> StreamFacts:
        for facts in self._streams.values():
            if any(subject_matches(p, subject) for p in facts.subjects):
                return facts
        answer = await self._api(f"find the stream for {subject!r}", "STREAM.NAMES", {"subject": subject})
        names = answer.get("streams") or []
        if not names:
            raise BusError(f"publish to {subject!r}: no stream holds this subject")
        return await self.facts(names[0])

    # publishing

    async def _prepare(
        self, subject: str, data: bytes, msg_id: str | None, headers: Mapping[str, str] | None,
        deliver_at: float | None,
    ) -> tuple[str, bytes, dict[str, str], str | None]:
        """The wire form of one publish: subject, body, headers, and the payload object's name if any."""
        self.check_open()
        check_subject(subject, wildcards=False)
        check_headers(headers)
        hdrs = dict(headers or {})
        if msg_id is not None:
            hdrs["Nats-Msg-Id"] = msg_id
        wire_subject = subject
        if deliver_at is not None:
            if not math.isfinite(deliver_at):
                raise BusError(f"deliver_at must be a finite Unix time, got {deliver_at!r}")
            facts = await self._stream_holding(subject)
            if not facts.allow_schedules:
                raise no_schedules(facts.name)
            if deliver_at > time.time():
                when = datetime.datetime.fromtimestamp(deliver_at, datetime.UTC)
                hdrs["Nats-Schedule"] = "@at " + when.isoformat(timespec="milliseconds")[:-6] + "Z"
                hdrs["Nats-Schedule-Target"] = subject
                wire_subject = f"{SCHED_PREFIX}.{facts.name}.{uuid.uuid4().hex}"
        ref = None
        if len(data) > self.inline_limit_bytes:
            ref = await self.payloads.put(bytes(data), "msg")
            hdrs[REF_HEADER] = ref
            data = b""
        return wire_subject, bytes(data), hdrs, ref

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        deliver_at: float | None = None,
    ) -> PubAck:
        wire_subject, body, hdrs, ref = await self._prepare(subject, data, msg_id, headers, deliver_at)
        try:
            with translate(f"publish to {subject!r}"):
                ack = await self._js.publish(wire_subject, body, headers=hdrs or None)
        except BusError:
            if ref is not None:
                await self.payloads.delete(ref)
            raise
        return await self._settle(ack, ref)

    async def _settle(self, ack: Any, ref: str | None) -> PubAck:
        if ack.duplicate and ref is not None:
            await self.payloads.delete(ref)  # the stored message has its own copy
        return PubAck(stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate))

    async def publish_batch(self, msgs: Sequence[OutMsg]) -> list[PubAck]:
        limit = self.inline_limit_bytes
        if all(_plain(m, limit) for m in msgs):
            # Plain messages (run jobs, mostly): the raw-frame path, without nats-py's
            # publish_async (a future, a NUID and a flusher hand-off each).
            results = await self.publish_many(msgs)
            failed = [(at, r) for at, r in enumerate(results) if isinstance(r, BusError)]
            if failed:
                at, error = failed[0]
                raise BusError(f"publish to {msgs[at].subject!r} (message {at} of a batch of {len(msgs)}, "
                               f"{len(failed)} failed): {error}") from error
            return [r for r in results if isinstance(r, PubAck)]
        # In turn, not gathered: after the first, stream lookups are cached and this is CPU only.
        prepared: list[tuple[str, bytes, dict[str, str], str | None]] = []
        try:
            for m in msgs:
                prepared.append(await self._prepare(m.subject, m.data, m.msg_id, m.headers, m.deliver_at))
        except BusError:
            await asyncio.gather(*(self.payloads.delete(p[3]) for p in prepared if p[3] is not None))
            raise
        futures: list[asyncio.Future[Any]] = []
        try:
            with translate(f"publish a batch of {len(msgs)}"):
                for wire_subject, body, hdrs, _ in prepared:
                    futures.append(await self._js.publish_async(wire_subject, body, headers=hdrs or None))
                acks = await asyncio.wait_for(
                    asyncio.gather(*futures, return_exceptions=True), self._timeout_s + len(msgs) / 1000
                )
        except BusError:
            for fut in futures:
                fut.cancel()
            await asyncio.gather(*(self.payloads.delete(p[3]) for p in prepared if p[3] is not None))
            raise
        out: list[PubAck] = []
        errors: list[tuple[int, BaseException]] = []
        for i, (ack, (_, _, _, ref)) in enumerate(zip(acks, prepared, strict=True)):
            if isinstance(ack, BaseException):
                errors.append((i, ack))
                if ref is not None:
                    await self.payloads.delete(ref)
            else:
                out.append(await self._settle(ack, ref))
        if errors:
            i, first = errors[0]
            with translate(f"publish to {msgs[i].subject!r} (message {i} of a batch of {len(msgs)}, "
                           f"{len(errors)} failed)"):
                raise first
        return out

    async def publish_many(self, msgs: Sequence[OutMsg]) -> list[PubAck | BusError]:
        """See :meth:`bus.base.Publisher.publish_many`. Plain messages (a ``msg_id`` at most,
        inline payloads, no ``deliver_at``) take :mod:`bus._nats_publish`: a run of at least
        ``ATOMIC_MIN`` of them with ids, bound for one stream, goes in atomic batches of up
        to 1,000 (one acknowledgement each; a batch the server refuses, e.g. for a duplicate
        id, goes again message by message), the rest pipelined. Others go one by one through
        :meth:`publish`."""
        fast_publisher = self.fast_publisher  # checks the bus is open
        results: list[PubAck | BusError | None] = [None] * len(msgs)
        fast: list[int] = []
        slow: list[int] = []
        checked = self._checked_subjects
        limit = self.inline_limit_bytes
        for i, m in enumerate(msgs):
            if not _plain(m, limit):
                slow.append(i)
                continue
            if m.subject not in checked:
                try:
                    check_subject(m.subject, wildcards=False)
                except BusError as err:
                    results[i] = err
                    continue
                if len(checked) >= _CHECKED_SUBJECTS_MAX:
                    checked.clear()
                checked[m.subject] = await self._atomic_stream(m.subject)
            fast.append(i)
        pipelined: list[int] = []
        atomic: list[list[int]] = []
        run: list[int] = []
        run_stream: str | None = None
        for i in [*fast, -1]:  # -1 ends the last run
            stream = checked[msgs[i].subject] if i >= 0 and msgs[i].msg_id is not None else None
            if run and (stream is None or stream != run_stream):
                if len(run) >= ATOMIC_MIN:
                    atomic += [run[k:k + ATOMIC_MAX] for k in range(0, len(run), ATOMIC_MAX)]
                else:
                    pipelined += run
                run = []
            if i < 0:
                break
            if stream is None:
                pipelined.append(i)
            else:
                run.append(i)
                run_stream = stream

        async def send_pipelined(at: list[int]) -> None:
            frames = [(msgs[i].subject, bytes(msgs[i].data), msgs[i].msg_id) for i in at]
            for i, result in zip(at, await fast_publisher.publish(frames), strict=True):
                results[i] = result

        async def send_atomic(at: list[int]) -> None:
            frames = [(msgs[i].subject, str(msgs[i].msg_id)) for i in at]
            acks = await fast_publisher.publish_atomic(frames, [bytes(msgs[i].data) for i in at])
            if acks is None:  # refused, nothing stored: message by message, which dedupes each
                await send_pipelined(at)
                return
            for i, ack in zip(at, acks, strict=True):
                results[i] = ack

        await asyncio.gather(*([send_pipelined(pipelined)] if pipelined else []),
                             *(send_atomic(chunk) for chunk in atomic))
        for i in slow:
            m = msgs[i]
            try:
                results[i] = await self.publish(m.subject, m.data, msg_id=m.msg_id, headers=m.headers,
                                                deliver_at=m.deliver_at)
            except BusError as err:
                results[i] = err
        return [r if r is not None else BusError("publish: no outcome") for r in results]

    async def _atomic_stream(self, subject: str) -> str | None:
        """The stream holding ``subject`` if it takes atomic batches (``None``: no, or none)."""
        try:
            facts = await self._stream_holding(subject)
        except BusError:
            return None
        return facts.name if facts.allow_atomic else None

    # consumers and buckets

    async def consumer(self, spec: ConsumerSpec) -> Consumer:
        self.check_open()
        check_stream_name(spec.durable)
        if spec.ack_wait_s <= 0 or spec.max_ack_pending <= 0 or spec.max_deliver == 0:
            raise BusError(f"consumer {spec.durable!r}: ack_wait_s and max_ack_pending must be positive, "
                           "max_deliver positive or -1")
        try:
            facts = await self.facts(spec.stream)
        except BusError as err:
            raise BusError(f"consumer {spec.durable!r}: no stream named {spec.stream!r} ({err})") from err
        filters: list[str] = []
        if spec.filter_subject is not None:
            check_subject(spec.filter_subject, wildcards=True)
            if facts.allow_schedules and patterns_overlap(spec.filter_subject, facts.sched_subject):
                raise BusError(
                    f"consumer {spec.durable!r}: filter {spec.filter_subject!r} would match the stream's "
                    f"schedule subjects {facts.sched_subject!r}; filter on your own subjects"
                )
            filters = [spec.filter_subject]
        elif facts.allow_schedules:
            filters = list(facts.subjects)
        consumer = NatsConsumer(self, self._nc, facts, spec, filters)
        await consumer.open()
        return consumer

    async def kv(self, bucket: str) -> KeyValue:
        self.check_open()
        check_bucket_name(bucket)
        with translate(f"open KV bucket {bucket!r}"):
            try:
                store = await self._js.key_value(bucket)
            except nats.js.errors.NotFoundError:
                store = await self._js.create_key_value(bucket=bucket, history=1, replicas=self._replicas)
        return NatsKeyValue(self, bucket, store)

    async def read_since(
        self, stream: str, subject: str, since: float, *, limit: int = 1000
    ) -> list[StoredMessage]:
        # Bounded by one request timeout per 100 messages asked for, at least two.
        timeout_s = self._timeout_s * max(2.0, limit / 100)
        return await read_since(self, self._nc, stream, subject, since, limit, timeout_s)

    async def subject_counts(self, stream: str, subject: str) -> dict[str, int]:
        check_stream_name(stream)
        check_subject(subject, wildcards=True)
        counts: dict[str, int] = {}
        while True:  # the server answers at most 100,000 subjects a request
            answer = await self._api(f"count the subjects of stream {stream!r}", f"STREAM.INFO.{stream}",
                                     {"subjects_filter": subject, "offset": len(counts)})
            page = (answer.get("state") or {}).get("subjects") or {}
            counts.update(page)
            if not page or len(counts) >= int(answer.get("total") or 0):
                break
        # A delayed message waits on a schedule subject of the stream's own: not the caller's.
        return {s: int(n) for s, n in counts.items() if n > 0 and not s.startswith(SCHED_PREFIX + ".")}

    @property
    def fast_publisher(self) -> FastPublisher:
        """The raw-frame publisher (for the driver's own modules)."""
        self.check_open()
        assert self._fast is not None
        return self._fast

    @property
    def jetstream(self) -> Any:
        """The nats-py JetStream context (for the driver's own modules)."""
        self.check_open()
        return self._js


def _plain(msg: OutMsg, inline_limit: int) -> bool:
    """Whether ``msg`` can take the raw-frame path: a ``msg_id`` at most (no other
    headers), no ``deliver_at``, a payload stored inline."""
    return not msg.headers and msg.deliver_at is None and len(msg.data) <= inline_limit


async def _close_quietly(nc: Any) -> None:
    try:
        await nc.close()
    except (nats.errors.Error, TimeoutError, OSError) as err:
        log.warning("closing the NATS connection: %r", err)
