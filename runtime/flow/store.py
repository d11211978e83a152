"""Where flow control keeps its state on the bus, and the compare-and-set it is built on.

- KV bucket ``sluice-flow``: one small msgpack record per (mechanism, function, group)
  (see :func:`runtime.flow.options.kv_key`). Every change is read, modify, write-if-
  unchanged (``KeyValue.update(last=rev)``), retried at most ``CAS_TRIES`` times.
- An *idle* record is written as ``b""`` rather than deleted: the bus has no
  delete-if-unchanged, and an unconditional delete could erase a record another node just
  wrote. ``b""`` reads as absent, and a later write CASes over it.
- Subject ``sluice.steps.flow`` on the existing ``SLUICE_STEPS`` work-queue stream (which
  allows schedules): the delayed "fire" messages that close debounce and batch windows,
  read by the durable consumer ``flow`` (see :func:`fire_consumer`). Its filter does not
  overlap the executor's ``sluice.steps.run``.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from bus import ConsumerSpec, KeyExistsError, KeyValue, RevisionMismatchError
from sluice.protocol import ProtocolError, pack, unpack

FLOW_BUCKET = "sluice-flow"
FIRE_SUBJECT = "sluice.steps.flow"
FIRE_STREAM = "SLUICE_STEPS"
FIRE_DURABLE = "flow"
# Contention on one key is a handful of nodes at once; past this many lost races the
# caller is told to come back later rather than spin.
CAS_TRIES = 12


class FlowBusyError(Exception):
    """A flow record kept changing under us for ``CAS_TRIES`` tries; try again later."""


def fire_consumer() -> ConsumerSpec:
    """The durable consumer of fire messages (one, shared by every node that runs it)."""
    return ConsumerSpec(stream=FIRE_STREAM, durable=FIRE_DURABLE, filter_subject=FIRE_SUBJECT, ack_wait_s=60.0)


async def read(kv: KeyValue, key: str) -> tuple[dict[str, Any] | None, int | None]:
    """The record at ``key`` (``None`` if absent or idle) and the revision to CAS against
    (``None``: absent, so the write must be a create)."""
    entry = await kv.get(key)
    if entry is None:
        return None, None
    if not entry.value:
        return None, entry.revision
    doc = unpack(entry.value)
    if not isinstance(doc, dict):
        raise ProtocolError(f"flow record {key!r} is not a map")
    return doc, entry.revision


async def write(kv: KeyValue, key: str, doc: dict[str, Any] | None, revision: int | None) -> bool:
    """Write ``doc`` (``None``: idle) if ``key`` is still at ``revision``; ``False`` if it moved."""
    data = b"" if doc is None else pack(doc)
    try:
        if revision is None:
            if doc is None:
                return True  # absent and staying absent
            await kv.create(key, data)
        else:
            await kv.update(key, data, last=revision)
    except (KeyExistsError, RevisionMismatchError):
        return False
    return True


async def backoff(attempt: int) -> None:
    """A short jittered pause after losing a CAS race (at most ~50 ms)."""
    await asyncio.sleep(random.uniform(0, min(0.05, 0.002 * (2 ** attempt))))


@dataclass(frozen=True)
class Fire:
    """A fire message: window ``window`` of ``kind`` (``debounce`` or ``batch``) for function
    ``fn`` in record ``key`` is due (``due``: the deadline it was set for, ms; 0 for a
    batch that filled up)."""

    kind: str
    fn: str
    key: str
    window: str
    due: int

    def encode(self) -> bytes:
        return pack({"kind": self.kind, "fn": self.fn, "key": self.key, "w": self.window, "due": self.due})

    @classmethod
    def decode(cls, data: bytes) -> Fire:
        doc = unpack(data)
        if (not isinstance(doc, dict) or doc.get("kind") not in ("debounce", "batch")
                or not all(isinstance(doc.get(f), str) for f in ("fn", "key", "w"))
                or not isinstance(doc.get("due"), int)):
            raise ProtocolError("a flow fire must be a map with kind, fn, key, w and due")
        return cls(doc["kind"], doc["fn"], doc["key"], doc["w"], doc["due"])

    @property
    def msg_id(self) -> str:
        # One message per (window, deadline): re-publishing it after every event is free.
        return f"flow:{self.window}:{self.due}"
