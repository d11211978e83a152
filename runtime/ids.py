"""Identifiers: time-sortable ULIDs, random or derived from a seed.

A ULID is 26 Crockford base-32 characters: 48 bits of milliseconds, then 80 bits
that are random (:func:`new_id`) or a hash of a seed (:func:`derived_id`). Derived ids
let a redelivered event create the *same* run id, which makes run creation idempotent.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


#: Random bits for new ids without a system call each (a busy node makes thousands a
#: second, and every system call on the event loop's thread lets other threads take the
#: GIL). Seeded from the OS; ``random`` reseeds it in a forked child. Ids and tokens need
#: to be unique, not secret: nothing grants access by knowing one.
_RANDOM = random.Random(os.urandom(32))
_ALPHABET_BYTES = _ALPHABET.encode()
_B32 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET_BYTES)


def _encode(ms: int, tail: int) -> str:
    """26 Crockford base-32 characters for 48 bits of ``ms`` and the 80 bits ``tail``."""
    value = (ms & ((1 << 48) - 1)) << 80 | (tail & ((1 << 80) - 1))
    # 128 bits as 130 (two leading zero bits) at the top of 17 bytes, base32 by table: 26 characters.
    return base64.b32encode((value << 6).to_bytes(17, "big") + b"\0" * 3)[:26].translate(_B32).decode()


def now_ms() -> int:
    """Wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def new_id(ms: int | None = None) -> str:
    """A fresh ULID for time ``ms`` (default now)."""
    return _encode(now_ms() if ms is None else ms, _RANDOM.getrandbits(80))


def derived_id(ms: int, seed: str) -> str:
    """The ULID for time ``ms`` whose random part is a hash of ``seed`` (same inputs, same id)."""
    return _encode(ms, int.from_bytes(hashlib.sha1(seed.encode("utf-8")).digest()[:10], "big"))


class IdMaker:
    """Fresh ULIDs for one time ``ms``, the same as :func:`new_id` makes.

    The 10 characters of the time are encoded once, and the 16 of the 80 random bits
    come from one ``os.urandom`` call per ``pool`` ids through base32 (RFC 4648 and
    Crockford's alphabet differ only in their letters: a ``bytes.translate``).
    """

    __slots__ = ("_pool", "_prefix", "_tails")

    def __init__(self, ms: int, pool: int = 64) -> None:
        self._prefix = new_id(ms)[:10]  # the 48 bits of time (and 2 zero bits above them)
        self._pool = pool
        self._tails: list[str] = []

    def __call__(self) -> str:
        if not self._tails:
            text = base64.b32encode(os.urandom(10 * self._pool)).translate(_B32).decode()
            self._tails = [text[i:i + 16] for i in range(0, len(text), 16)]
        return self._prefix + self._tails.pop()
