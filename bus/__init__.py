"""Every byte that crosses NATS: see :mod:`bus.base` for the contract."""

from bus.base import (
    Bus,
    BusError,
    Consumer,
    ConsumerSpec,
    Entry,
    KeyExistsError,
    KeyValue,
    Message,
    OutMsg,
    PubAck,
    RevisionMismatchError,
    StoredMessage,
    StreamSpec,
)

__all__ = [
    "Bus", "BusError", "Consumer", "ConsumerSpec", "Entry", "KeyExistsError", "KeyValue",
    "Message", "OutMsg", "PubAck", "RevisionMismatchError", "StoredMessage", "StreamSpec", "open_bus",
]


def open_bus(url: str, **options: object) -> Bus:
    """A bus driver for ``url``: ``memory://`` or ``nats://host:port[,nats://...]`` (not started)."""
    if url.startswith("memory://"):
        from bus.memory import MemoryBus

        return MemoryBus(**options)  # type: ignore[arg-type]
    if url.startswith(("nats://", "tls://")):
        from bus.nats import NatsBus

        return NatsBus(url, **options)  # type: ignore[arg-type]
    raise BusError(f"unknown bus URL {url!r}: use memory:// or nats://host:port")
