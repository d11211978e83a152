"""Identifiers: time-sortable ULIDs, random or derived from a seed.

A ULID is 26 Crockford base-32 characters: 48 bits of milliseconds, then 80 bits
that are random (:func:`new_id`) or a hash of a seed (:func:`derived_id`). Derived ids
let a redelivered event create the *same* run id, which makes run creation idempotent.
"""

from __future__ import annotations

import hashlib
import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(ms: int, tail: bytes) -> str:
    value = (ms & ((1 << 48) - 1)) << 80 | int.from_bytes(tail[:10], "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def now_ms() -> int:
    """Wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def new_id(ms: int | None = None) -> str:
    """A fresh ULID for time ``ms`` (default now)."""
    return _encode(now_ms() if ms is None else ms, os.urandom(10))


def derived_id(ms: int, seed: str) -> str:
    """The ULID for time ``ms`` whose random part is a hash of ``seed`` (same inputs, same id)."""
    return _encode(ms, hashlib.sha1(seed.encode("utf-8")).digest())
