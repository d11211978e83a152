"""The bus contract: every byte that crosses NATS goes through these protocols.

The bus knows streams, consumers, key-value buckets, delayed delivery and large
payloads. It knows nothing about functions, runs or sandboxes. Two drivers
implement it, picked by URL (see :func:`bus.open_bus`): ``nats://host:port`` (JetStream)
and ``memory://`` (in-process, same semantics, for fast tests and single-process use).
Both pass ``tests/conformance/bus.py``.

Units: durations are seconds (float); timestamps are Unix seconds (float); sizes bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class BusError(Exception):
    """The bus could not do what was asked; the message says what and why."""


class KeyExistsError(BusError):
    """``KeyValue.create`` found the key already present."""


class RevisionMismatchError(BusError):
    """``KeyValue.update`` was given a revision that is no longer the latest."""


@dataclass(frozen=True)
class StreamSpec:
    """A stream to create (or check) with :meth:`Bus.ensure_stream`.

    ``work_queue``: each message is removed once acked (one consumer per subject).
    ``dedupe_window_s``: publishes with the same ``msg_id`` inside it are one message.
    ``allow_schedules``: the stream accepts ``publish(..., deliver_at=...)``.
    ``max_age_s``: messages older than this are dropped (``None``: kept).
    """

    name: str
    subjects: Sequence[str]
    work_queue: bool = False
    dedupe_window_s: float = 120.0
    allow_schedules: bool = False
    max_age_s: float | None = None


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer.

    ``ack_wait_s``: a delivered message not acked (nor marked in progress) within this
    is delivered again. It must exceed the longest work a message can stand for.
    ``max_deliver``: give up after this many deliveries (-1: never).
    ``max_ack_pending``: most messages delivered and not yet acked at once.
    """

    stream: str
    durable: str
    filter_subject: str | None = None
    ack_wait_s: float = 30.0
    max_deliver: int = -1
    max_ack_pending: int = 10_000


@dataclass(frozen=True)
class PubAck:
    """The stream's acknowledgement: the message is durably stored (or was a duplicate)."""

    stream: str
    seq: int
    duplicate: bool = False


@dataclass(frozen=True)
class OutMsg:
    """One message to publish with :meth:`Publisher.publish_batch`."""

    subject: str
    data: bytes
    msg_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    deliver_at: float | None = None


@dataclass(frozen=True)
class Entry:
    """A key-value entry: its bytes and the revision that wrote them."""

    key: str
    value: bytes
    revision: int


@dataclass(frozen=True)
class StoredMessage:
    """A message read back from a stream by :meth:`Bus.read_since` (not delivered: no acks).

    ``timestamp``: when the stream stored it (Unix seconds; for a ``deliver_at`` message,
    when it became due). ``seq``: its sequence in the stream. ``data`` arrives resolved if
    it was stored by reference; ``headers`` are the publisher's (never the bus's own).
    """

    subject: str
    data: bytes
    headers: Mapping[str, str]
    timestamp: float
    seq: int


@runtime_checkable
class Message(Protocol):
    """A message delivered by a consumer. Payloads stored by reference arrive resolved."""

    @property
    def subject(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def num_delivered(self) -> int:
        """1 on first delivery, 2 on the first redelivery, and so on."""
        ...

    async def ack(self) -> None:
        """Done with it: it will not be delivered again."""

    async def nak(self, delay_s: float | None = None) -> None:
        """Deliver it again, after ``delay_s`` if given."""

    async def in_progress(self) -> None:
        """Still working: restart the ack-wait clock."""

    async def term(self) -> None:
        """Never deliver it again (poison message)."""


class Publisher(Protocol):
    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        deliver_at: float | None = None,
    ) -> PubAck:
        """Store one message; return once the stream has acknowledged it.

        ``msg_id`` dedupes within the stream's window. ``deliver_at`` (Unix seconds)
        holds it back until then, durably (second granularity on NATS); the stream
        must allow schedules. Payloads larger than the driver's inline limit are put
        in the object store and the message carries a reference, transparently.
        Raises :class:`BusError` if no stream holds ``subject``.
        """
        ...

    async def publish_batch(self, msgs: Sequence[OutMsg]) -> list[PubAck]:
        """Publish many messages pipelined; return once every one is acknowledged."""
        ...

    async def publish_many(self, msgs: Sequence[OutMsg]) -> list[PubAck | BusError]:
        """Publish many messages pipelined; each one's own outcome, in order.

        Like :meth:`publish_batch`, but one message's failure (no stream holds its
        subject, a refusal, no acknowledgement in time) is returned in its place as the
        :class:`BusError` it met instead of raised, so callers that publish for several
        parties at once can answer each one. A :class:`BusError` for a message does not
        prove it was not stored (see :meth:`publish`). Raises only if the bus is not open.
        The drivers make this their cheapest way to store many small messages.
        """
        ...


class Consumer(Protocol):
    async def fetch(self, batch: int, timeout_s: float) -> list[Message]:
        """Up to ``batch`` messages; waits at most ``timeout_s`` for the first (``[]`` if none).

        It may be cancelled while it waits: a message it had already taken is not lost but
        returned by a later ``fetch``, or handed back (nak) by ``close``."""
        ...

    async def close(self) -> None:
        """Stop fetching. Messages already delivered can still be acked, nak'ed or termed."""
        ...


class KeyValue(Protocol):
    """A bucket of keys with compare-and-set by revision."""

    async def get(self, key: str) -> Entry | None: ...

    async def put(self, key: str, value: bytes) -> int:
        """Write unconditionally; return the new revision."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Write only if absent; raise :class:`KeyExistsError` otherwise."""
        ...

    async def update(self, key: str, value: bytes, last: int) -> int:
        """Write only if the latest revision is ``last``; raise :class:`RevisionMismatchError` otherwise."""
        ...

    async def delete(self, key: str) -> None: ...

    async def keys(self, prefix: str | None = None) -> list[str]:
        """The live keys, sorted; with ``prefix``, only those starting with it.

        ``prefix`` is made of key characters (``None`` or ``""``: every key); anything
        else raises :class:`BusError`. Cost on NATS: one small message per live key read.
        A prefix ending at a token boundary (``"runs."``) is filtered by the server, so it
        costs only the keys under it; any other prefix reads the keys under its last ``.``
        (the whole bucket if it has none) and filters them in the client.
        """
        ...


@runtime_checkable
class Bus(Publisher, Protocol):
    """A connected bus. Lifecycle: ``start`` / ``close`` (twice is safe), or ``async with``."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ensure_stream(self, spec: StreamSpec) -> None:
        """Create the stream, or update it to ``spec`` if it exists."""
        ...

    async def consumer(self, spec: ConsumerSpec) -> Consumer:
        """Create or bind the durable pull consumer."""
        ...

    async def kv(self, bucket: str) -> KeyValue:
        """Create or bind a key-value bucket."""
        ...

    async def read_since(
        self, stream: str, subject: str, since: float, *, limit: int = 1000
    ) -> list[StoredMessage]:
        """Messages ``stream`` stored on ``subject`` (wildcards allowed) at or after ``since``.

        ``since`` is Unix seconds, compared with :attr:`StoredMessage.timestamp`. Oldest
        first, at most ``limit`` (the oldest ``limit``). Large payloads arrive resolved. It
        leaves no durable state and does not disturb any consumer. Messages stored while
        it reads may or may not be included. Returns ``[]`` at once if nothing matches.
        Cost on NATS: a short-lived consumer (two requests) plus the messages returned.
        Raises :class:`BusError` for an unknown stream, a work-queue stream (its consumers
        must ack), a subject no subject of the stream can match, or ``limit`` below 1.
        """
        ...

    async def subject_counts(self, stream: str, subject: str) -> dict[str, int]:
        """How many messages ``stream`` holds on each subject matching ``subject`` (wildcards
        allowed); a subject holding none is left out. A delayed message counts once it is due;
        on a work queue, a delivered message counts until it is acked or termed. For finding
        work on subjects no consumer is reading yet. Cost on NATS: one stream-info request
        (per 100,000 subjects). Raises :class:`BusError` for an unknown stream or a bad subject.
        """
        ...

    async def __aenter__(self) -> Bus: ...

    async def __aexit__(self, *exc: object) -> None: ...
