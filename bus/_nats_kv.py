"""JetStream KV buckets behind the :class:`bus.base.KeyValue` contract.

``get``, ``create`` and ``update`` (a run's creation, and the executor's read and
compare-and-set of it, once a step each) go through the driver's raw-frame path
(:mod:`bus._nats_publish`): the same JetStream requests nats-py's ``KeyValue`` sends
(``STREAM.MSG.GET`` by last subject; a publish with ``Nats-Expected-Last-Subject-
Sequence``), without its per-request costs. The other operations use nats-py's ``KeyValue``.

Values over the bus's inline limit are stored by reference (see
:mod:`bus._nats_support`); ``delete`` removes a referenced payload too. A payload of an
overwritten large value is not removed (it would need a read before every write).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bus._names import check_key, check_key_prefix
from bus._nats_publish import Refused
from bus._nats_support import KV_REF_MARKER, translate
from bus.base import BusError, Entry, KeyExistsError, RevisionMismatchError

if TYPE_CHECKING:
    from bus.nats import NatsBus


class NatsKeyValue:
    def __init__(self, bus: NatsBus, name: str, store: Any) -> None:
        self._bus = bus
        self._name = name
        self._kv = store

    def _what(self, op: str, key: str) -> str:
        return f"KV {op} of {key!r} in bucket {self._name!r}"

    async def _encode(self, value: bytes) -> tuple[bytes, str | None]:
        if len(value) > self._bus.inline_limit_bytes or value.startswith(KV_REF_MARKER):
            ref = await self._bus.payloads.put(bytes(value), "kv")
            return KV_REF_MARKER + ref.encode(), ref
        return bytes(value), None

    async def _write(self, op: str, key: str, value: bytes, last: int | None = None) -> int:
        check_key(key)
        self._bus.check_open()
        wire, ref = await self._encode(value)
        try:
            with translate(self._what(op, key)):
                try:
                    if op == "create":
                        return await self._create(key, wire)
                    if op == "update":
                        return await self._update(key, wire, last or 0)
                    return int(await self._kv.put(key, wire))
                except nats.js.errors.KeyWrongLastSequenceError as err:
                    if op == "create":
                        raise KeyExistsError(f"key {key!r} already exists in bucket {self._name!r}") from err
                    raise RevisionMismatchError(
                        f"key {key!r} in bucket {self._name!r} is not at revision {last} ({err.description})"
                    ) from err
        except BusError:
            if ref is not None:
                await self._bus.payloads.delete(ref)
            raise

    async def _update(self, key: str, wire: bytes, last: int) -> int:
        result = await self._bus.fast_publisher.publish_expect(f"$KV.{self._name}.{key}", wire, last)
        if isinstance(result, Refused) and result.code in _WRONG_LAST_SEQUENCE:
            raise nats.js.errors.KeyWrongLastSequenceError(description=str(result))
        if isinstance(result, BusError):
            raise result
        return result.seq

    async def _create(self, key: str, wire: bytes) -> int:
        """As nats-py's ``KeyValue.create``: write only if the key has no value; a key whose
        last message is a delete or purge marker counts as having none."""
        try:
            return await self._update(key, wire, 0)
        except nats.js.errors.KeyWrongLastSequenceError:
            last = await self._last(key)
            if last is None or not last[1]:
                raise
            return await self._update(key, wire, last[0])

    async def _last(self, key: str) -> tuple[int, bool, bytes] | None:
        """The key's last message: (sequence, deleted, data); ``None`` if it has none."""
        subject = f"$KV.{self._name}.{key}"
        with translate(self._what("get", key)):
            reply = await self._bus.fast_publisher.request(
                f"$JS.API.STREAM.MSG.GET.KV_{self._name}", json.dumps({"last_by_subj": subject}).encode())
        try:
            answer = json.loads(reply.data)
        except ValueError:
            raise BusError(f"{self._what('get', key)}: a reply that is not JSON: {reply.data[:200]!r}") from None
        error = answer.get("error")
        if error:
            if error.get("code") == 404:
                return None
            raise BusError(f"{self._what('get', key)}: {error.get('description')} (code {error.get('err_code')})")
        message = answer.get("message") or {}
        if message.get("subject") != subject:
            return None
        deleted = _deleted(base64.b64decode(message.get("hdrs") or ""))
        return int(message["seq"]), deleted, base64.b64decode(message.get("data") or "")

    async def get(self, key: str) -> Entry | None:
        check_key(key)
        self._bus.check_open()
        last = await self._last(key)
        if last is None or last[1]:
            return None
        revision, _, value = last
        if value.startswith(KV_REF_MARKER):
            value = await self._bus.payloads.get(value[len(KV_REF_MARKER):].decode())
        return Entry(key=key, value=value, revision=revision)

    async def put(self, key: str, value: bytes) -> int:
        return await self._write("put", key, value)

    async def create(self, key: str, value: bytes) -> int:
        return await self._write("create", key, value)

    async def update(self, key: str, value: bytes, last: int) -> int:
        return await self._write("update", key, value, last)

    async def delete(self, key: str) -> None:
        check_key(key)
        self._bus.check_open()
        with translate(self._what("delete", key)):
            try:
                old = await self._kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                old = None
            await self._kv.delete(key)
        if old is not None and (old.value or b"").startswith(KV_REF_MARKER):
            await self._bus.payloads.delete(old.value[len(KV_REF_MARKER):].decode())

    async def keys(self, prefix: str | None = None) -> list[str]:
        """The live keys, read from the last message of every key's subject.

        Not nats-py's ``KeyValue.keys``: its watcher can signal "no more" before the
        entries it was sent (a race seen under load), returning too few keys. The
        server reads only the subjects under ``prefix`` up to its last ``.``; the rest
        of the prefix is matched here.
        """
        start = check_key_prefix(prefix)
        self._bus.check_open()
        js = self._bus.jetstream
        stream, prefix_len = f"KV_{self._name}", len(f"$KV.{self._name}.")
        under = start[: start.rfind(".") + 1]  # "" or up to and including the last "."
        if "" in under.split(".")[:-1]:
            under = ""  # an empty token ("a..", ".") is no subject: read everything, match here
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, ack_policy=AckPolicy.NONE, headers_only=True,
            filter_subject=f"$KV.{self._name}.{under}>", inactive_threshold=30.0, mem_storage=True,
        )
        keys: list[str] = []
        with translate(f"KV keys of bucket {self._name!r}"):
            # One request answers the common case, no key under the prefix at all (the
            # scheduler asks for every event whether any run waits for its name); only a
            # prefix with subjects pays for a consumer that reads their last messages.
            found = (await js.stream_info(stream, subjects_filter=config.filter_subject)).state.subjects
            if not any(subject[prefix_len:].startswith(start) for subject in found or ()):
                return []
            info = await js.add_consumer(stream, config)
            try:
                wanted = int(info.num_pending or 0)
                if wanted:
                    sub = await js.pull_subscribe_bind(consumer=info.name, stream=stream)
                    try:
                        seen = 0
                        for _ in range(wanted):  # bounded: each round gets at least one message
                            if seen >= wanted:
                                break
                            batch = await sub.fetch(min(wanted - seen, 1000), timeout=5.0)
                            seen += len(batch)
                            keys += [m.subject[prefix_len:] for m in batch
                                     if (m.headers or {}).get("KV-Operation") not in ("DEL", "PURGE")]
                    finally:
                        await sub.unsubscribe()
            finally:
                await js.delete_consumer(stream, info.name)
        return sorted(k for k in keys if k.startswith(start))


#: JetStream's codes for a publish whose expected last sequence did not match.
_WRONG_LAST_SEQUENCE = (10071, 10164)


def _deleted(headers: bytes) -> bool:
    """Whether a KV message's header block (``NATS/1.0`` then ``Name: value`` lines) marks
    the key deleted or purged."""
    for line in headers.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"kv-operation" and value.strip() in (b"DEL", b"PURGE"):
            return True
    return False
