"""What the NATS driver keeps across a nats-server restart: scheduled and pending messages.

One bus stays connected throughout: it reconnects by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bus import BusError, ConsumerSpec, StreamSpec
from bus.nats import NatsBus
from bus.server import NatsServer

pytestmark = pytest.mark.nats


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_scheduled_and_pending_messages_survive_a_server_restart(nats_server: NatsServer, how: str) -> None:
    async with NatsBus(nats_server.url) as bus:
        await bus.ensure_stream(StreamSpec("JOBS", ["jobs.>"], work_queue=True, allow_schedules=True))
        spec = ConsumerSpec("JOBS", "worker", filter_subject="jobs.run", ack_wait_s=1.0)
        consumer = await bus.consumer(spec)
        due = time.time() + 2.0
        await bus.publish("jobs.run", b"timer", deliver_at=due)
        await bus.publish("jobs.run", b"pending")
        [pending] = await consumer.fetch(1, 2)
        assert pending.data == b"pending"  # delivered, never acked

        await (nats_server.stop() if how == "stop" else nats_server.kill())  # kill: SIGKILL, as a crash
        await nats_server.start()

        got: dict[bytes, float] = {}
        deadline = time.monotonic() + 15
        while len(got) < 2 and time.monotonic() < deadline:
            try:
                msgs = await consumer.fetch(10, 1.0)
            except BusError:  # still reconnecting
                await asyncio.sleep(0.2)
                continue
            for msg in msgs:
                got.setdefault(msg.data, time.time())
                await msg.ack()
        assert set(got) == {b"pending", b"timer"}
        assert got[b"timer"] >= due - 0.05
        assert await consumer.fetch(10, 0.5) == []


async def test_a_publish_that_failed_while_the_server_was_down_is_stored_once_when_retried(
    nats_server: NatsServer,
) -> None:
    # A BusError from publish does not prove the message was not stored (nats-py sends what it
    # buffered once reconnected), so the caller retries with the same msg_id.
    async with NatsBus(nats_server.url, timeout_s=1.0) as bus:
        await bus.ensure_stream(StreamSpec("JOBS", ["jobs.>"], work_queue=True))
        consumer = await bus.consumer(ConsumerSpec("JOBS", "worker"))
        await nats_server.stop()
        started = time.monotonic()
        with pytest.raises(BusError, match=r"publish to 'jobs\.run'"):
            await bus.publish("jobs.run", b"once", msg_id="job-1")
        assert time.monotonic() - started < 3
        await nats_server.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                await bus.publish("jobs.run", b"once", msg_id="job-1")
                break
            except BusError:
                await asyncio.sleep(0.2)
        msgs = await consumer.fetch(10, 2)
        assert [m.data for m in msgs] == [b"once"]
        assert await consumer.fetch(10, 0.5) == []
