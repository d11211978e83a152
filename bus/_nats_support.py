"""Plumbing the NATS driver shares: error translation and large payloads by reference.

Large payloads: NATS refuses messages over the server's ``max_payload`` (1 MiB by
default). A message body or KV value over the driver's inline limit is put in the
JetStream object store bucket :data:`PAYLOAD_BUCKET` under a fresh name; a message then
carries an empty body and the header :data:`REF_HEADER`, a KV value the bytes
:data:`KV_REF_MARKER` followed by the name. Readers resolve both transparently. A KV
value that merely *starts* with the marker is stored by reference too, so the marker
is never ambiguous.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import nats.errors
import nats.js.errors
from nats.js.api import ObjectStoreConfig, StorageType

from bus.base import BusError

log = logging.getLogger("bus.nats")

PAYLOAD_BUCKET = "sluice-payloads"
REF_HEADER = "Sluice-Payload-Ref"
KV_REF_MARKER = b"\x00sluice-payload-ref\x00"


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Re-raise NATS client errors as :class:`BusError` saying ``what`` failed and why."""
    try:
        yield
    except BusError:
        raise
    except nats.js.errors.NoStreamResponseError as err:
        raise BusError(f"{what}: no stream holds this subject (no JetStream responder)") from err
    except nats.js.errors.APIError as err:
        raise BusError(f"{what}: JetStream refused: {err.description} (code {err.err_code})") from err
    except nats.errors.NoRespondersError as err:
        raise BusError(f"{what}: nobody answered (is JetStream enabled on the server?)") from err
    except (nats.errors.Error, TimeoutError, OSError) as err:
        raise BusError(f"{what}: {type(err).__name__}: {err or 'no detail'}") from err


class Payloads:
    """The object store bucket for payloads over the inline limit, created on first use."""

    def __init__(self, js: Any, replicas: int) -> None:
        self._js = js
        self._replicas = replicas
        self._store: Any = None
        self._lock = asyncio.Lock()

    async def _bucket(self) -> Any:
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    with translate(f"open object store {PAYLOAD_BUCKET!r}"):
                        try:
                            self._store = await self._js.object_store(PAYLOAD_BUCKET)
                        except nats.js.errors.NotFoundError:
                            config = ObjectStoreConfig(storage=StorageType.FILE, replicas=self._replicas)
                            self._store = await self._js.create_object_store(PAYLOAD_BUCKET, config)
        return self._store

    async def put(self, data: bytes, kind: str) -> str:
        """Store ``data``; return its fresh name (``kind`` is a readable prefix)."""
        name = f"{kind}.{uuid.uuid4().hex}"
        store = await self._bucket()
        with translate(f"store a {len(data)}-byte payload in {PAYLOAD_BUCKET!r}"):
            await store.put(name, data)
        return name

    async def get(self, name: str) -> bytes:
        store = await self._bucket()
        with translate(f"read payload {name!r} from {PAYLOAD_BUCKET!r}"):
            result = await store.get(name)
        return bytes(result.data or b"")

    async def delete(self, name: str) -> None:
        """Best effort: a payload left behind costs disk, never correctness."""
        try:
            store = await self._bucket()
            await store.delete(name)
        except (BusError, nats.errors.Error, TimeoutError, OSError) as err:
            log.warning("could not delete payload %s from %s: %r", name, PAYLOAD_BUCKET, err)
