"""The NATS driver beyond the conformance suite: what lives on the server, and connection errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from bus import BusError, ConsumerSpec, KeyExistsError, OutMsg, RevisionMismatchError, StreamSpec
from bus._nats_support import KV_REF_MARKER, PAYLOAD_BUCKET
from bus.nats import NatsBus
from bus.server import NatsServer, free_port

pytestmark = pytest.mark.nats

BIG = b"x" * (2 * 1024 * 1024)


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[Any]:
    """A plain nats-py JetStream context, to look at the server behind the driver's back."""
    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()


async def _stored_payloads(js: Any) -> int:
    info = await js.stream_info(f"OBJ_{PAYLOAD_BUCKET}", subjects_filter=f"$O.{PAYLOAD_BUCKET}.C.>")
    return len(info.state.subjects or {})


async def test_an_acked_work_queue_message_leaves_the_stream_and_its_payload_is_deleted(
    nats_server: NatsServer, js: Any
) -> None:
    async with NatsBus(nats_server.url) as bus:
        await bus.ensure_stream(StreamSpec("JOBS", ["jobs.>"], work_queue=True))
        await bus.publish("jobs.big", BIG, msg_id="big-1")
        assert (await bus.publish("jobs.big", BIG, msg_id="big-1")).duplicate
        assert await _stored_payloads(js) == 1  # the duplicate's copy is gone already
        consumer = await bus.consumer(ConsumerSpec("JOBS", "w"))
        [msg] = await consumer.fetch(1, 5)
        assert msg.data == BIG and dict(msg.headers) == {}
        await msg.ack()
        assert (await js.stream_info("JOBS")).state.messages == 0
        assert await _stored_payloads(js) == 0


async def test_a_deleted_kv_value_takes_its_payload_with_it(nats_server: NatsServer, js: Any) -> None:
    async with NatsBus(nats_server.url) as bus:
        kv = await bus.kv("state")
        await kv.put("k", BIG)
        # A small value that merely looks like a reference is stored by reference too.
        await kv.put("tricky", KV_REF_MARKER + b"not-a-ref")
        tricky = await kv.get("tricky")
        assert tricky is not None and tricky.value == KV_REF_MARKER + b"not-a-ref"
        assert await _stored_payloads(js) == 2
        await kv.delete("k")
        assert await kv.get("k") is None
        assert await _stored_payloads(js) == 1


async def test_a_scheduled_message_waits_on_a_schedule_subject_no_consumer_sees(
    nats_server: NatsServer, js: Any
) -> None:
    async with NatsBus(nats_server.url) as bus:
        await bus.ensure_stream(StreamSpec("JOBS", ["jobs.>"], work_queue=True, allow_schedules=True))
        await bus.publish("jobs.run", b"later", deliver_at=time.time() + 60)
        info = await js.stream_info("JOBS", subjects_filter=">")
        [subject] = info.state.subjects
        assert subject.startswith("_sluice.sched.JOBS.")
        with pytest.raises(BusError, match="schedule subjects"):
            await bus.consumer(ConsumerSpec("JOBS", "greedy", filter_subject=">"))
        consumer = await bus.consumer(ConsumerSpec("JOBS", "w"))
        assert await consumer.fetch(10, 0.5) == []


async def test_a_stream_made_elsewhere_is_found_for_deliver_at(nats_server: NatsServer) -> None:
    async with NatsBus(nats_server.url) as maker:
        await maker.ensure_stream(StreamSpec("JOBS", ["jobs.>"], allow_schedules=True))
        await maker.ensure_stream(StreamSpec("PLAIN", ["plain.>"]))
    async with NatsBus(nats_server.url) as bus:
        await bus.publish("jobs.run", b"x", deliver_at=time.time() + 60)
        with pytest.raises(BusError, match="does not allow schedules"):
            await bus.publish("plain.x", b"x", deliver_at=time.time() + 60)
        with pytest.raises(BusError, match="no stream holds"):
            await bus.publish("nowhere.x", b"x", deliver_at=time.time() + 60)


async def test_publish_batch_pipelines_a_thousand_messages_quickly(nats_server: NatsServer) -> None:
    async with NatsBus(nats_server.url) as bus:
        await bus.ensure_stream(StreamSpec("JOBS", ["jobs.>"], work_queue=True))
        msgs = [OutMsg("jobs.run", b"%d" % i, msg_id=f"m{i}") for i in range(1000)]
        started = time.monotonic()
        acks = await bus.publish_batch(msgs)
        elapsed = time.monotonic() - started
        assert [a.seq for a in acks] == list(range(1, 1001))
        assert elapsed < 2.0  # measured about 0.1 s here; awaited one by one it is several times slower
        consumer = await bus.consumer(ConsumerSpec("JOBS", "w"))
        got = await consumer.fetch(1000, 5)
        assert len(got) == 1000


async def test_connecting_to_nothing_is_a_bus_error_within_the_connect_timeout() -> None:
    bus = NatsBus(f"nats://127.0.0.1:{free_port()}", connect_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(BusError, match="cannot connect to NATS"):
        await bus.start()
    assert time.monotonic() - started < 3
    await bus.close()


async def test_using_a_bus_before_start_is_a_bus_error(nats_server: NatsServer) -> None:
    bus = NatsBus(nats_server.url)
    with pytest.raises(BusError, match="not started"):
        await bus.publish("x", b"x")


async def test_kv_get_and_update_take_the_raw_frame_path_and_agree_with_nats_py(
    nats_server: NatsServer, js: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``get``, ``create`` and ``update`` do not go through nats-py's KeyValue (whose request path costs
    a system call and a header parser each), yet read and write what it does: a value it
    put, a purge it made, and a revision it reports."""
    from nats.js.kv import KeyValue

    bus = NatsBus(nats_server.url)
    await bus.start()
    try:
        kv = await bus.kv("fastpath")
        theirs = await js.key_value("fastpath")
        rev = await theirs.put("k", b"from nats-py")

        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("nats-py's KeyValue was used")

        for name in ("get", "update", "create"):
            monkeypatch.setattr(KeyValue, name, refuse)
        got = await kv.get("k")
        assert got is not None and (got.value, got.revision) == (b"from nats-py", rev)
        rev2 = await kv.update("k", b"from sluice", last=rev)
        with pytest.raises(RevisionMismatchError):
            await kv.update("k", b"stale", last=rev)
        monkeypatch.undo()
        entry = await theirs.get("k")
        assert (entry.value, entry.revision) == (b"from sluice", rev2)
        await theirs.purge("k")
        assert await kv.get("k") is None
        assert await kv.get("never.written") is None
        monkeypatch.setattr(KeyValue, "create", refuse)
        rev3 = await kv.create("k", b"after the purge")  # a purged key may be created again
        with pytest.raises(KeyExistsError):
            await kv.create("k", b"twice")
        got = await kv.get("k")
        assert got is not None and (got.value, got.revision) == (b"after the purge", rev3)
    finally:
        await bus.close()
