"""Identifiers: time-sortable ULIDs, random or derived from a seed.

A ULID is 26 Crockford base-32 characters: 48 bits of milliseconds, then 80 bits
that are random (:func:`new_id`) or a hash of a seed (:func:`derived_id`). Derived ids
let a redelivered event create the *same* run id, which makes run creation idempotent.
"""

from __future__ import annotations

import hashlib
import os
import random
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


#: Random bits for new ids without a system call each (a busy node makes thousands a
#: second, and every system call on the event loop's thread lets other threads take the
#: GIL). Seeded from the OS, and seeded afresh in a forked child (``random`` does that
#: only for its own module-level generator), so a parent and its child never share ids.
#: Ids and tokens need to be unique, not secret: nothing grants access by knowing one.
_RANDOM = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _RANDOM.seed(os.urandom(32)))

#: The two characters for each 10-bit value: an id is 13 of them, the first 5 the time
#: (48 bits under 2 zero bits), the other 8 the 80 bits of its tail. By table, because
#: ``base64.b32encode`` is pure Python and a few times slower (ids are made per event).
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_MS_MASK = (1 << 48) - 1
_TAIL_MASK = (1 << 80) - 1


def _time_chars(ms: int) -> str:
    """The first 10 characters of an id: the 48 bits of ``ms`` (and 2 zero bits above them)."""
    p = _PAIRS
    ms &= _MS_MASK
    return "".join((p[ms >> 40], p[(ms >> 30) & 1023], p[(ms >> 20) & 1023], p[(ms >> 10) & 1023], p[ms & 1023]))


def _tail_chars(tail: int) -> str:
    """The last 16 characters of an id: the 80 bits of ``tail``."""
    p = _PAIRS
    tail &= _TAIL_MASK
    return "".join((p[tail >> 70], p[(tail >> 60) & 1023], p[(tail >> 50) & 1023], p[(tail >> 40) & 1023],
                    p[(tail >> 30) & 1023], p[(tail >> 20) & 1023], p[(tail >> 10) & 1023], p[tail & 1023]))


def _encode(ms: int, tail: int) -> str:
    """26 Crockford base-32 characters for 48 bits of ``ms`` and the 80 bits ``tail``."""
    return _time_chars(ms) + _tail_chars(tail)


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

    The 10 characters of the time are encoded once; each id adds the 16 of its 80
    random bits (from the same generator as :func:`new_id`).
    """

    __slots__ = ("_prefix",)

    def __init__(self, ms: int) -> None:
        self._prefix = _time_chars(ms)

    def __call__(self) -> str:
        return self._prefix + _tail_chars(_RANDOM.getrandbits(80))
