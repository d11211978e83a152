"""Key-value buckets of the memory bus, with NATS KV's revision rules.

Revisions count per bucket (as a KV bucket's stream sequence does on NATS). A delete
leaves a tombstone with its own revision: the key reads as absent, ``create`` may
write it again, and ``update(last=<tombstone revision>)`` succeeds, as on NATS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bus._names import check_key, check_key_prefix
from bus.base import Entry, KeyExistsError, RevisionMismatchError

if TYPE_CHECKING:
    from bus.memory import MemoryBus


@dataclass
class Bucket:
    revision: int = 0
    # key -> (value, revision); value None is a tombstone.
    entries: dict[str, tuple[bytes | None, int]] = field(default_factory=dict)

    def write(self, key: str, value: bytes | None) -> int:
        self.revision += 1
        self.entries[key] = (None if value is None else bytes(value), self.revision)
        return self.revision


class MemoryKeyValue:
    def __init__(self, bus: MemoryBus, name: str, bucket: Bucket) -> None:
        self._bus = bus
        self._name = name
        self._bucket = bucket

    def _check(self, key: str) -> None:
        self._bus.check_open()
        check_key(key)

    async def get(self, key: str) -> Entry | None:
        self._check(key)
        value, revision = self._bucket.entries.get(key, (None, 0))
        return None if value is None else Entry(key=key, value=value, revision=revision)

    async def put(self, key: str, value: bytes) -> int:
        self._check(key)
        return self._bucket.write(key, value)

    async def create(self, key: str, value: bytes) -> int:
        self._check(key)
        current, _ = self._bucket.entries.get(key, (None, 0))
        if current is not None:
            raise KeyExistsError(f"key {key!r} already exists in bucket {self._name!r}")
        return self._bucket.write(key, value)

    async def update(self, key: str, value: bytes, last: int) -> int:
        self._check(key)
        _, revision = self._bucket.entries.get(key, (None, 0))
        if revision != last:
            raise RevisionMismatchError(
                f"key {key!r} in bucket {self._name!r} is at revision {revision}, not {last}"
            )
        return self._bucket.write(key, value)

    async def delete(self, key: str) -> None:
        self._check(key)
        self._bucket.write(key, None)

    async def keys(self, prefix: str | None = None) -> list[str]:
        start = check_key_prefix(prefix)
        self._bus.check_open()
        entries = self._bucket.entries.items()
        return sorted(k for k, (value, _) in entries if value is not None and k.startswith(start))
