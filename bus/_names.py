"""Names both drivers check the same way: subjects, stream and bucket names, keys, headers.

Checking here (rather than letting NATS answer) gives both drivers one error message
for one mistake, which the conformance suite relies on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from bus.base import BusError

# Headers the drivers use on the wire; a caller setting them would corrupt delivery.
RESERVED_HEADER_PREFIXES = ("nats-", "sluice-")

_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_BUCKET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_KEY = re.compile(r"^[-/_=.A-Za-z0-9]+$")
_TOKEN = re.compile(r"^[^\s.*>]+$")
_KEY_PREFIX = re.compile(r"[-/_=.A-Za-z0-9]*")


def check_stream_name(name: str) -> None:
    if not _STREAM_NAME.match(name):
        raise BusError(f"invalid stream name {name!r}: use letters, digits, '_' and '-'")


def check_bucket_name(name: str) -> None:
    if not _BUCKET_NAME.match(name):
        raise BusError(f"invalid bucket name {name!r}: use letters, digits, '_' and '-'")


def check_key(key: str) -> None:
    if not _KEY.match(key) or key.startswith(".") or key.endswith("."):
        raise BusError(f"invalid key {key!r}: use letters, digits and -/_=. (not at either end)")


def check_key_prefix(prefix: str | None) -> str:
    """A ``KeyValue.keys`` prefix made of key characters; ``None`` becomes ``""`` (every key)."""
    if prefix is None:
        return ""
    if not isinstance(prefix, str) or not _KEY_PREFIX.fullmatch(prefix):
        raise BusError(f"invalid key prefix {prefix!r}: use the characters of keys (letters, digits and -/_=.)")
    return prefix


def check_read_since(subject: str, since: float, limit: int) -> None:
    """The arguments of ``Bus.read_since`` that need no stream to check."""
    check_subject(subject, wildcards=True)
    if not isinstance(since, int | float) or not math.isfinite(since):
        raise BusError(f"read_since: since must be a finite Unix time in seconds, got {since!r}")
    if not isinstance(limit, int) or limit < 1:
        raise BusError(f"read_since: limit must be a whole number of at least 1, got {limit!r}")


def check_readable(stream: str, work_queue: bool, subjects: Sequence[str], subject: str) -> None:
    """``Bus.read_since`` reads only what a stream can hold, and never a work queue."""
    if work_queue:
        raise BusError(f"read_since: stream {stream!r} is a work queue; its messages can only be "
                       "read by its consumer (which must ack them)")
    if not any(patterns_overlap(subject, held) for held in subjects):
        raise BusError(f"read_since: stream {stream!r} holds no subject matching {subject!r} "
                       f"(it holds {', '.join(subjects)})")


def check_subject(subject: str, *, wildcards: bool) -> None:
    """A dot-separated subject; ``*`` (one token) and a final ``>`` (the rest) if ``wildcards``."""
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if wildcards and (token == "*" or (token == ">" and i == len(tokens) - 1)):
            continue
        if not _TOKEN.match(token):
            kind = "subject pattern" if wildcards else "subject (no wildcards here)"
            raise BusError(f"invalid {kind} {subject!r}: bad token {token!r}")


def check_headers(headers: Mapping[str, str] | None) -> None:
    for name, value in (headers or {}).items():
        if not name or any(c in name for c in ":\r\n ") or any(c in value for c in "\r\n"):
            raise BusError(
                f"invalid header {name!r}: names need no ':', spaces or newlines; values no newlines"
            )
        if name.lower().startswith(RESERVED_HEADER_PREFIXES):
            raise BusError(
                f"header {name!r} is reserved: names starting with Nats- or Sluice- are the bus's own"
            )


def not_open(state: str) -> BusError:
    """The error for using a bus that is not started (``state`` "new") or closed."""
    return BusError("the bus is closed" if state == "closed" else "the bus is not started: call start()")


def no_schedules(stream: str) -> BusError:
    return BusError(f"stream {stream!r} does not allow schedules: deliver_at needs allow_schedules")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS matching: ``*`` is one token, a final ``>`` one or more tokens."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


def patterns_overlap(a: str, b: str) -> bool:
    """Whether some subject matches both patterns (NATS refuses two streams that overlap)."""
    x, y = a.split("."), b.split(".")
    for i in range(max(len(x), len(y))):
        if i >= len(x) or i >= len(y):
            return False
        if x[i] == ">" or y[i] == ">":
            return True
        if x[i] != y[i] and "*" not in (x[i], y[i]):
            return False
    return True
