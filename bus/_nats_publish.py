"""The NATS driver's fast path for :meth:`bus.nats.NatsBus.publish_many`.

``publish_batch`` goes through nats-py's ``publish_async``: a semaphore, a future, a
NUID token, header encoding and a flusher hand-off for every message. That costs
~25 us of CPU a message, which is most of what an event ingest spends. This path
writes the same wire form itself:

- every message of a call becomes one ``HPUB`` frame (its ``Nats-Msg-Id`` header
  encoded exactly as nats-py encodes it: stripped, newlines turned into spaces; a
  message without ``msg_id`` a plain ``PUB``), and all frames go to the connection's
  pending buffer in one write, flushed once. Messages with headers of their own,
  ``deliver_at`` or a payload over the inline limit take the ordinary path;
- each frame's reply subject is ``<inbox>.<call>.<index>`` on one wildcard
  subscription made the first time, so an acknowledgement finds its call by a dict
  lookup and its message by the index; a call keeps one future, resolved when its
  last acknowledgement arrives;
- an acknowledgement with an ``error`` (or a no-responders status) becomes that
  message's :class:`BusError`; the other messages of the call are unaffected;
- :meth:`FastPublisher.publish_atomic` sends up to 1,000 messages as one JetStream
  atomic batch (``Nats-Batch-Id``/``-Sequence``/``-Commit`` headers, nats-server 2.12+):
  only the commit carries a reply, so the client parses one acknowledgement, not 1,000
  (each message's sequence follows from the commit's). The server stores all of it or
  none; :meth:`bus.nats.NatsBus.publish_many` sends a refused batch again frame by frame.
- :meth:`FastPublisher.publish_expect` is one publish with ``Nats-Expected-Last-Subject-
  Sequence`` (a KV compare-and-set), and :meth:`FastPublisher.request` a plain request
  (a KV read), both answered on the same wildcard subscription. nats-py's own request
  path costs a ``secrets.token_hex`` (a system call), an ``asyncio.wait_for`` and, for a
  KV read, an ``email`` header parser each; an executor makes one of each per step.

The frames go through nats-py's ``Client._send_command`` / ``_flush_pending`` (private,
pinned with nats-py==2.16.0 in pyproject.toml; ``tests/bus`` and the conformance suite
exercise them on a real nats-server). While the client is disconnected it buffers
them like any publish, up to its pending-size limit, and sends them on reconnect; a
call that times out first reports :class:`BusError` for its unanswered messages,
which may still be stored (retry with the same ``msg_id``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Sequence
from typing import Any

import nats.errors

from bus.base import BusError, PubAck

_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
#: The most messages nats-server takes in one atomic batch (its default ``max_msgs``).
ATOMIC_MAX = 1000
#: Acknowledgements a subscription may hold before nats-py drops them as a slow consumer.
_PENDING_ACKS = 4_000_000


class Refused(BusError):
    """JetStream answered a publish with an error; ``code`` is its ``err_code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Call:
    """One ``publish_many`` call waiting for its acknowledgements."""

    __slots__ = ("done", "left", "results", "subjects", "wait_s")

    def __init__(self, subjects: list[str], done: asyncio.Future[None]) -> None:
        self.subjects = subjects
        self.wait_s = 0.0
        self.results: list[PubAck | BusError | None] = [None] * len(subjects)
        self.left = len(subjects)
        self.done = done


class FastPublisher:
    """Pipelined JetStream publishes over one nats-py connection (see the module doc)."""

    def __init__(self, nc: Any, timeout_s: float) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self._prefix = ""
        self._calls: dict[str, _Call] = {}
        self._requests: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        #: Counters (for tests and diagnostics): atomic batches committed, and refused.
        self.atomic_batches = 0
        self.atomic_refused = 0

    async def _subscribe(self) -> None:
        async with self._lock:
            if self._prefix:
                return
            prefix = self._nc.new_inbox()
            await self._nc.subscribe(prefix + ".>", cb=self._on_ack, pending_msgs_limit=_PENDING_ACKS,
                                     pending_bytes_limit=-1)
            self._prefix = prefix

    async def publish(self, frames: Sequence[tuple[str, bytes, str | None]]) -> list[PubAck | BusError]:
        """Publish ``(subject, data, msg_id)`` frames; each one's ack or error, in order.

        Subjects must already be checked by the caller.
        """
        if not frames:
            return []
        if not self._prefix:
            await self._subscribe()
        nc = self._nc
        call_id = str(next(self._ids))
        reply_b = f"{self._prefix}.{call_id}.".encode()
        max_payload = nc.max_payload
        parts: list[bytes] = []
        subjects: list[str] = []
        early: dict[int, BusError] = {}
        for i, (subject, data, msg_id) in enumerate(frames):
            subjects.append(subject)
            if msg_id is None:
                total = len(data)
                frame = b"PUB %s %s%d %d\r\n%s\r\n" % (subject.encode(), reply_b, i, total, data)
            else:
                hdr = b"NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n" % msg_id.strip().translate(_NEWLINES).encode()
                total = len(hdr) + len(data)
                frame = b"HPUB %s %s%d %d %d\r\n%s%s\r\n" % (subject.encode(), reply_b, i, len(hdr), total, hdr, data)
            if total > max_payload:
                early[i] = _too_big(subject, total, max_payload)
                continue
            parts.append(frame)
        call = _Call(subjects, asyncio.get_running_loop().create_future())
        for i, err in early.items():
            call.results[i] = err
            call.left -= 1
        if call.left > 0:
            await self._send(call_id, call, parts)
        return self._outcomes(call)

    async def publish_atomic(self, frames: Sequence[tuple[str, str]], data: Sequence[bytes],
                             ) -> list[PubAck | BusError] | None:
        """Publish ``(subject, msg_id)`` frames with their ``data`` as one JetStream atomic batch
        (at most 1,000, all bound for one stream that allows them); every message's ack.

        Only the commit is acknowledged, so this costs a fraction of :meth:`publish` a
        message. ``None`` if the server refused the batch, which then stored none of it
        (a duplicate ``msg_id``, in the batch or stored before, refuses it; so do the
        server's batch limits): the caller publishes it again the ordinary way, which
        dedupes message by message. Raises :class:`BusError` if the connection fails;
        an unanswered commit is a :class:`BusError` for every message.
        """
        n = len(frames)
        if not 0 < n <= ATOMIC_MAX:
            raise BusError(f"an atomic batch holds 1 to {ATOMIC_MAX} messages, not {n}")
        if not self._prefix:
            await self._subscribe()
        call_id = str(next(self._ids))
        batch = uuid.uuid4().hex.encode()
        max_payload = self._nc.max_payload
        parts: list[bytes] = []
        last = n - 1
        for i, ((subject, msg_id), body) in enumerate(zip(frames, data, strict=True)):
            hdr = b"NATS/1.0\r\nNats-Msg-Id: %s\r\nNats-Batch-Id: %s\r\nNats-Batch-Sequence: %d\r\n%s\r\n" % (
                msg_id.strip().translate(_NEWLINES).encode(), batch, i + 1,
                b"Nats-Batch-Commit: 1\r\n" if i == last else b"")
            total = len(hdr) + len(body)
            if total > max_payload:
                return None
            if i == last:
                parts.append(b"HPUB %s %s.%s.0 %d %d\r\n%s%s\r\n" % (
                    subject.encode(), self._prefix.encode(), call_id.encode(), len(hdr), total, hdr, body))
            else:
                parts.append(b"HPUB %s %d %d\r\n%s%s\r\n" % (subject.encode(), len(hdr), total, hdr, body))
        call = _Call([frames[-1][0]], asyncio.get_running_loop().create_future())
        await self._send(call_id, call, parts)
        unanswered = call.results[0] is None
        [commit] = self._outcomes(call)
        if isinstance(commit, BusError):
            if unanswered:
                return [commit] * n
            self.atomic_refused += 1
            return None
        self.atomic_batches += 1
        first = commit.seq - n + 1
        return [PubAck(stream=commit.stream, seq=first + i) for i in range(n)]

    async def publish_expect(self, subject: str, data: bytes, last_subject_seq: int) -> PubAck | BusError:
        """Publish ``data`` to ``subject`` only if the subject's last message has sequence
        ``last_subject_seq`` (0: it has none); the ack, or the :class:`BusError` (a
        :class:`Refused` with code 10071 when the sequence does not match)."""
        if not self._prefix:
            await self._subscribe()
        call_id = str(next(self._ids))
        hdr = b"NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: %d\r\n\r\n" % last_subject_seq
        total = len(hdr) + len(data)
        if total > self._nc.max_payload:
            return _too_big(subject, total, self._nc.max_payload)
        frame = b"HPUB %s %s.%s.0 %d %d\r\n%s%s\r\n" % (
            subject.encode(), self._prefix.encode(), call_id.encode(), len(hdr), total, hdr, data)
        call = _Call([subject], asyncio.get_running_loop().create_future())
        await self._send(call_id, call, [frame])
        return self._outcomes(call)[0]

    async def request(self, subject: str, payload: bytes) -> Any:
        """Send ``payload`` to ``subject`` and return the reply message (nats-py's ``Msg``).
        :class:`BusError` if none comes within the timeout or the connection fails."""
        if not self._prefix:
            await self._subscribe()
        call_id = f"r{next(self._ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._requests[call_id] = future
        try:
            await self._write(b"PUB %s %s.%s.0 %d\r\n%s\r\n" % (
                subject.encode(), self._prefix.encode(), call_id.encode(), len(payload), payload),
                f"request to {subject!r}")
            timer = asyncio.get_running_loop().call_later(self._timeout_s, _settle, future, None)
            try:
                reply = await future
            finally:
                timer.cancel()
            if reply is None:
                raise BusError(f"request to {subject!r}: no answer within {self._timeout_s:g} s")
            return reply
        finally:
            self._requests.pop(call_id, None)

    async def _send(self, call_id: str, call: _Call, parts: list[bytes]) -> None:
        """Write ``parts`` in one go and wait (bounded) for ``call``'s acknowledgements."""
        self._calls[call_id] = call
        call.wait_s = self._timeout_s + len(parts) / 1000
        try:
            await self._write(b"".join(parts), f"publish a batch of {len(parts)}")
            # A timer, not asyncio.wait_for: no extra future or task per call. Unanswered
            # messages are reported by _outcomes.
            timer = asyncio.get_running_loop().call_later(call.wait_s, _settle, call.done, None)
            try:
                await call.done
            finally:
                timer.cancel()
        finally:
            self._calls.pop(call_id, None)

    async def _write(self, data: bytes, what: str) -> None:
        """Queue ``data`` on the connection and flush it. :class:`BusError` (saying ``what``
        was being sent) if the connection is closed, is down with its buffer full, or fails."""
        nc = self._nc
        try:
            if nc.is_closed:
                raise BusError(f"{what}: the NATS connection is closed")
            if not nc.is_connected and nc._max_pending_size > 0 and (
                    nc._pending_data_size + len(data) > nc._max_pending_size):
                raise BusError(f"{what}: disconnected from NATS and the client's buffer is full")
            await nc._send_command(data)
            await nc._flush_pending()
        except (nats.errors.Error, OSError) as err:
            raise BusError(f"{what}: {type(err).__name__}: {err}") from err

    def _outcomes(self, call: _Call) -> list[PubAck | BusError]:
        out: list[PubAck | BusError] = []
        for i, result in enumerate(call.results):
            if result is None:
                result = BusError(f"publish to {call.subjects[i]!r}: no acknowledgement within "
                                  f"{call.wait_s:g} s (it may still be stored)")
            out.append(result)
        return out

    async def _on_ack(self, msg: Any) -> None:
        subject: str = msg.subject
        head, _, index = subject.rpartition(".")
        call_id = head[len(self._prefix) + 1:]
        call = self._calls.get(call_id)
        if call is None:
            future = self._requests.get(call_id)
            if future is not None and not future.done():
                future.set_result(msg)
            return  # else the call gave up waiting
        i = int(index)
        if call.results[i] is not None:
            return
        call.results[i] = _ack(call.subjects[i], msg)
        call.left -= 1
        if call.left == 0 and not call.done.done():
            call.done.set_result(None)


def _too_big(subject: str, total: int, max_payload: int) -> BusError:
    return BusError(f"publish to {subject!r}: {total} bytes is over the server's max_payload of {max_payload}")


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _ack(subject: str, msg: Any) -> PubAck | BusError:
    """A JetStream publish reply as a :class:`PubAck`, or the :class:`BusError` it reports."""
    data: bytes = msg.data
    if not data:
        status = (msg.headers or {}).get("Status")
        if status == "503":
            return BusError(f"publish to {subject!r}: no stream holds this subject (no JetStream responder)")
        return BusError(f"publish to {subject!r}: an empty reply (status {status})")
    try:
        answer = json.loads(data)
    except ValueError:
        return BusError(f"publish to {subject!r}: a reply that is not JSON: {data[:200]!r}")
    error = answer.get("error")
    if error:
        return Refused(f"publish to {subject!r}: JetStream refused: {error.get('description')} "
                       f"(code {error.get('err_code')})", int(error.get("err_code") or 0))
    return PubAck(stream=answer["stream"], seq=int(answer["seq"]), duplicate=bool(answer.get("duplicate")))
