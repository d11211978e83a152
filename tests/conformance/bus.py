"""The bus conformance suite: the same tests run against every driver (see ``conftest.bus``).

Collected through ``test_bus.py``. Waits are real (ack waits of 1 s, delays of 1-2 s), so
timing assertions leave slack for a loaded 2-core machine: "not before" checks are
strict, "by then" checks are generous.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bus import (
    Bus,
    BusError,
    ConsumerSpec,
    KeyExistsError,
    OutMsg,
    PubAck,
    RevisionMismatchError,
    StreamSpec,
)

BIG = bytes(range(256)) * (3 * 1024 * 1024 // 256)  # 3 MiB: over NATS's 1 MiB max_payload


async def _stream(bus: Bus, name: str = "S", subjects: tuple[str, ...] = ("s.>",), **kw: object) -> None:
    await bus.ensure_stream(StreamSpec(name=name, subjects=list(subjects), **kw))  # type: ignore[arg-type]


async def test_a_published_message_is_fetched_with_its_headers_and_acked_once(bus: Bus) -> None:
    await _stream(bus)
    ack = await bus.publish("s.one", b"hello", headers={"Trace": "abc"})
    assert ack.stream == "S" and ack.seq >= 1 and not ack.duplicate
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c"))
    [msg] = await consumer.fetch(10, 5)
    assert (msg.subject, msg.data, msg.num_delivered) == ("s.one", b"hello", 1)
    assert dict(msg.headers) == {"Trace": "abc"}
    await msg.ack()
    assert await consumer.fetch(10, 0.3) == []
    await consumer.close()


async def test_fetch_returns_at_most_the_batch_and_returns_early(bus: Bus) -> None:
    await _stream(bus)
    await bus.publish_batch([OutMsg(subject="s.n", data=str(i).encode()) for i in range(5)])
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c"))
    started = time.monotonic()
    first = await consumer.fetch(3, 10)
    rest = await consumer.fetch(10, 10)
    assert time.monotonic() - started < 3
    assert [m.data for m in first + rest] == [b"0", b"1", b"2", b"3", b"4"]
    for m in first + rest:
        await m.ack()


async def test_a_consumer_sees_only_subjects_matching_its_filter(bus: Bus) -> None:
    await _stream(bus)
    for subject in ("s.a", "s.b", "s.a.deep"):
        await bus.publish(subject, subject.encode())
    only_a = await bus.consumer(ConsumerSpec(stream="S", durable="a", filter_subject="s.a"))
    one_token = await bus.consumer(ConsumerSpec(stream="S", durable="star", filter_subject="s.*"))
    assert [m.subject for m in await only_a.fetch(10, 2)] == ["s.a"]
    assert sorted(m.subject for m in await one_token.fetch(10, 2)) == ["s.a", "s.b"]


async def test_a_repeated_msg_id_is_reported_duplicate_and_delivered_once(bus: Bus) -> None:
    await _stream(bus, dedupe_window_s=60)
    first = await bus.publish("s.x", b"1", msg_id="id-1")
    again = await bus.publish("s.x", b"2", msg_id="id-1")
    batch = await bus.publish_batch([OutMsg("s.x", b"3", msg_id="id-1"), OutMsg("s.x", b"4", msg_id="id-2")])
    assert not first.duplicate and again.duplicate and [a.duplicate for a in batch] == [True, False]
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c"))
    assert [m.data for m in await consumer.fetch(10, 2)] == [b"1", b"4"]


async def test_a_work_queue_hands_each_message_to_one_consumer_until_acked(bus: Bus) -> None:
    await _stream(bus, work_queue=True)
    await bus.publish("s.job", b"done")
    await bus.publish("s.job", b"again")
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="w", filter_subject="s.job"))
    done, again = await consumer.fetch(10, 2)
    await done.ack()
    await again.nak()
    [redelivered] = await consumer.fetch(10, 2)
    assert (redelivered.data, redelivered.num_delivered) == (b"again", 2)
    await redelivered.ack()
    with pytest.raises(BusError):
        await bus.consumer(ConsumerSpec(stream="S", durable="other", filter_subject="s.>"))
    assert await consumer.fetch(10, 0.3) == []


async def test_an_unacked_message_is_delivered_again_after_the_ack_wait(bus: Bus) -> None:
    await _stream(bus)
    await bus.publish("s.x", b"x")
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c", ack_wait_s=1.0))
    [_unacked] = await consumer.fetch(1, 2)
    delivered = time.monotonic()
    assert await consumer.fetch(1, 0.5) == []
    [again] = await consumer.fetch(1, 4)
    assert time.monotonic() - delivered >= 0.9
    assert (again.data, again.num_delivered) == (b"x", 2)
    await again.ack()


async def test_a_nak_with_delay_holds_the_message_back_for_that_long(bus: Bus) -> None:
    await _stream(bus)
    await bus.publish("s.x", b"x")
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c", ack_wait_s=30))
    [msg] = await consumer.fetch(1, 2)
    await msg.nak(1.0)
    naked = time.monotonic()
    assert await consumer.fetch(1, 0.5) == []
    [again] = await consumer.fetch(1, 4)
    assert time.monotonic() - naked >= 0.9
    assert again.num_delivered == 2


async def test_in_progress_restarts_the_ack_wait(bus: Bus) -> None:
    await _stream(bus)
    await bus.publish("s.x", b"x")
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c", ack_wait_s=1.0))
    [msg] = await consumer.fetch(1, 2)
    for _ in range(3):  # 1.8 s of work in 0.6 s steps, each inside a fresh 1 s ack wait
        assert await consumer.fetch(1, 0.6) == []
        await msg.in_progress()
    [again] = await consumer.fetch(1, 4)
    assert again.num_delivered == 2


async def test_num_delivered_counts_deliveries_and_max_deliver_stops_them(bus: Bus) -> None:
    await _stream(bus)
    await bus.publish("s.x", b"x")
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c", max_deliver=3))
    seen = []
    for _ in range(3):
        [msg] = await consumer.fetch(1, 2)
        seen.append(msg.num_delivered)
        await msg.nak()
    assert seen == [1, 2, 3]
    assert await consumer.fetch(1, 0.5) == []


async def test_max_ack_pending_bounds_what_is_out_and_an_ack_makes_room_at_once(bus: Bus) -> None:
    await _stream(bus)
    await bus.publish_batch([OutMsg("s.x", b"%d" % i) for i in range(5)])
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c", max_ack_pending=2))
    first = await consumer.fetch(10, 2)
    assert [m.data for m in first] == [b"0", b"1"]
    assert await consumer.fetch(10, 0.5) == []
    await first[0].ack()
    started = time.monotonic()
    assert [m.data for m in await consumer.fetch(10, 2)] == [b"2"]
    assert time.monotonic() - started < 1.0


async def test_a_termed_message_is_never_delivered_again(bus: Bus) -> None:
    await _stream(bus)
    await bus.publish("s.x", b"poison")
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c", ack_wait_s=1.0))
    [msg] = await consumer.fetch(1, 2)
    await msg.term()
    assert await consumer.fetch(1, 1.5) == []


async def test_a_durable_consumer_resumes_where_it_stopped_when_bound_again(bus: Bus) -> None:
    await _stream(bus)
    for i in range(3):
        await bus.publish("s.x", str(i).encode())
    spec = ConsumerSpec(stream="S", durable="c")
    first = await bus.consumer(spec)
    [msg] = await first.fetch(1, 2)
    await msg.ack()
    await first.close()
    second = await bus.consumer(spec)
    assert [m.data for m in await second.fetch(10, 2)] == [b"1", b"2"]


async def test_deliver_at_holds_a_message_back_until_its_time(bus: Bus) -> None:
    await _stream(bus, work_queue=True, allow_schedules=True)
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c"))  # no filter: sees only s.>
    due = time.time() + 2.0
    ack = await bus.publish("s.later", b"later", msg_id="t1", headers={"Kind": "timer"}, deliver_at=due)
    assert not ack.duplicate
    assert (await bus.publish("s.later", b"later", msg_id="t1", deliver_at=due)).duplicate
    await bus.publish("s.big", BIG, deliver_at=due)  # a payload by reference, delayed
    await bus.publish("s.now", b"now", deliver_at=time.time() - 5)  # in the past: at once
    [now] = await consumer.fetch(10, 2)
    assert now.data == b"now"
    await now.ack()
    assert await consumer.fetch(10, 1.0) == []
    later = await consumer.fetch(10, 5)
    assert time.time() >= due - 0.05
    if len(later) < 2:  # the two may fire a moment apart
        later += await consumer.fetch(10, 2)
    timer, big = sorted(later, key=lambda m: m.subject, reverse=True)
    assert (timer.subject, timer.data, dict(timer.headers)) == ("s.later", b"later", {"Kind": "timer"})
    assert (big.subject, big.data == BIG, dict(big.headers)) == ("s.big", True, {})
    for msg in later:
        await msg.ack()
    assert await consumer.fetch(10, 0.3) == []


async def test_deliver_at_on_a_stream_without_schedules_is_refused(bus: Bus) -> None:
    await _stream(bus)
    with pytest.raises(BusError, match="allow_schedules"):
        await bus.publish("s.x", b"x", deliver_at=time.time() + 5)


async def test_kv_reads_writes_and_compares_and_sets_by_revision(bus: Bus) -> None:
    kv = await bus.kv("conf")
    assert await kv.get("a") is None
    assert await kv.keys() == []
    rev1 = await kv.put("a", b"1")
    entry = await kv.get("a")
    assert entry is not None and (entry.key, entry.value, entry.revision) == ("a", b"1", rev1)
    with pytest.raises(KeyExistsError):
        await kv.create("a", b"x")
    rev2 = await kv.update("a", b"2", last=rev1)
    assert rev2 > rev1
    with pytest.raises(RevisionMismatchError):
        await kv.update("a", b"3", last=rev1)
    b_rev = await kv.create("b.c", b"bc")
    assert b_rev > rev2
    assert await kv.keys() == ["a", "b.c"]
    await kv.delete("a")
    assert await kv.get("a") is None
    assert await kv.keys() == ["b.c"]
    assert await kv.create("a", b"again") > b_rev  # a deleted key may be created again
    same = await bus.kv("conf")
    got = await same.get("a")
    assert got is not None and got.value == b"again"


async def test_kv_refuses_bad_keys_and_bucket_names(bus: Bus) -> None:
    kv = await bus.kv("conf")
    for key in ("", "has space", ".lead", "trail.", "star*"):
        with pytest.raises(BusError, match="invalid key"):
            await kv.put(key, b"x")
    with pytest.raises(BusError, match="invalid bucket"):
        await bus.kv("no.dots")


async def test_a_large_payload_roundtrips_through_publish_and_kv(bus: Bus) -> None:
    await _stream(bus, work_queue=True)
    await bus.publish("s.big", BIG, headers={"Size": "3M"})
    [batched] = await bus.publish_batch([OutMsg("s.big", BIG[::-1])])
    assert not batched.duplicate
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c"))
    msgs = await consumer.fetch(10, 10)
    assert [m.data == d for m, d in zip(msgs, (BIG, BIG[::-1]), strict=True)] == [True, True]
    assert dict(msgs[0].headers) == {"Size": "3M"}
    for m in msgs:
        await m.ack()
    kv = await bus.kv("big")
    rev = await kv.put("k", BIG)
    entry = await kv.get("k")
    assert entry is not None and entry.value == BIG and entry.revision == rev


async def test_publishing_where_no_stream_listens_is_a_bus_error(bus: Bus) -> None:
    await _stream(bus)
    with pytest.raises(BusError):
        await bus.publish("elsewhere.x", b"x")
    with pytest.raises(BusError):
        await bus.publish_batch([OutMsg("s.ok", b"1"), OutMsg("elsewhere.y", b"2")])


async def test_bad_subjects_and_reserved_headers_are_refused(bus: Bus) -> None:
    await _stream(bus)
    with pytest.raises(BusError, match="invalid subject"):
        await bus.publish("s.*", b"x")
    with pytest.raises(BusError, match="reserved"):
        await bus.publish("s.x", b"x", headers={"Nats-Msg-Id": "sneaky"})
    with pytest.raises(BusError, match="overlap"):
        await _stream(bus, name="Other", subjects=("s.x",))


async def test_ensure_stream_twice_updates_and_keeps_messages(bus: Bus) -> None:
    await _stream(bus)
    await bus.publish("s.x", b"kept")
    await _stream(bus, subjects=("s.>", "t.>"), dedupe_window_s=30)
    await bus.publish("t.y", b"new")
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c"))
    assert [m.data for m in await consumer.fetch(10, 2)] == [b"kept", b"new"]
    with pytest.raises(BusError):
        await _stream(bus, subjects=("s.>", "t.>"), work_queue=True)  # retention cannot change


async def test_close_twice_is_safe_and_a_closed_bus_refuses_work(bus: Bus) -> None:
    await _stream(bus)
    await bus.close()
    await bus.close()
    with pytest.raises(BusError):
        await bus.publish("s.x", b"x")


async def test_kv_keys_with_a_prefix_lists_only_the_live_keys_starting_with_it(bus: Bus) -> None:
    kv = await bus.kv("runs")
    for key in ("runs.a1.state", "runs.a1.steps.x", "runs.a2.state", "runs.b.state", "runsx", "other.y", "r"):
        await kv.put(key, b"v")
    await kv.delete("runs.a2.state")
    await kv.delete("r")
    assert await kv.keys("runs.") == ["runs.a1.state", "runs.a1.steps.x", "runs.b.state"]  # token boundary
    assert await kv.keys("runs.a1.") == ["runs.a1.state", "runs.a1.steps.x"]
    assert await kv.keys("runs.a2.") == []  # its only key was deleted
    assert await kv.keys("runs.a") == ["runs.a1.state", "runs.a1.steps.x"]  # mid-token
    assert await kv.keys("runs") == ["runs.a1.state", "runs.a1.steps.x", "runs.b.state", "runsx"]
    assert await kv.keys("r") == await kv.keys("runs")
    assert await kv.keys("nothing.") == [] and await kv.keys("runs.a1.steps.x.") == []
    assert await kv.keys("runs..") == [] and await kv.keys(".") == []
    everything = ["other.y", "runs.a1.state", "runs.a1.steps.x", "runs.b.state", "runsx"]
    assert await kv.keys() == await kv.keys(None) == await kv.keys("") == everything
    await kv.put("runs.a2.state", b"back")
    assert await kv.keys("runs.a2.") == ["runs.a2.state"]
    for bad in ("has space", "star*", "gt>"):
        with pytest.raises(BusError, match="invalid key prefix"):
            await kv.keys(bad)


async def _before_and_after(bus: Bus) -> float:
    """Publish ``old`` messages, then return a ``since`` that falls after them."""
    await _stream(bus, subjects=("ev.>", "other.>"))
    await bus.publish("ev.x", b"old-x")
    await bus.publish("ev.y", b"old-y")
    time.sleep(0.01)  # noqa: ASYNC251  # a strict gap between the two sides of since
    since = time.time()
    time.sleep(0.01)  # noqa: ASYNC251
    return since


async def test_read_since_returns_what_was_stored_on_the_subject_from_since_on_oldest_first(bus: Bus) -> None:
    since = await _before_and_after(bus)
    await bus.publish("ev.x", b"1", headers={"Trace": "t1"})
    await bus.publish("ev.y", b"skip")
    await bus.publish("other.x", b"skip")
    await bus.publish("ev.x", b"2")
    got = await bus.read_since("S", "ev.x", since)
    assert [(m.subject, m.data) for m in got] == [("ev.x", b"1"), ("ev.x", b"2")]
    assert dict(got[0].headers) == {"Trace": "t1"} and dict(got[1].headers) == {}
    assert since <= got[0].timestamp <= got[1].timestamp <= time.time() and got[0].seq < got[1].seq
    # A message's own timestamp, given back as since, includes it: a cursor that loses nothing.
    again = await bus.read_since("S", "ev.x", got[1].timestamp)
    assert [(m.data, m.seq, m.timestamp) for m in again] == [(b"2", got[1].seq, got[1].timestamp)]
    everything = await bus.read_since("S", "ev.x", 0)
    assert [m.data for m in everything] == [b"old-x", b"1", b"2"]


async def test_read_since_takes_wildcards_and_the_oldest_up_to_the_limit(bus: Bus) -> None:
    since = await _before_and_after(bus)
    for i in range(5):
        await bus.publish(f"ev.{'xy'[i % 2]}", b"%d" % i)
    await bus.publish("ev.x.deep", b"deep")
    await bus.publish("other.x", b"no")
    assert [m.data for m in await bus.read_since("S", "ev.*", since)] == [b"0", b"1", b"2", b"3", b"4"]
    assert [m.data for m in await bus.read_since("S", "ev.>", since, limit=100)][-1] == b"deep"
    assert [m.data for m in await bus.read_since("S", "ev.*", since, limit=2)] == [b"0", b"1"]
    assert [m.subject for m in await bus.read_since("S", "*.x", since)] == ["ev.x", "ev.x", "ev.x", "other.x"]
    assert len(await bus.read_since("S", ">", since)) == 7


async def test_read_since_resolves_a_payload_stored_by_reference(bus: Bus) -> None:
    since = await _before_and_after(bus)
    await bus.publish("ev.big", BIG, headers={"Size": "3M"})
    [big] = await bus.read_since("S", "ev.big", since)
    assert big.data == BIG and dict(big.headers) == {"Size": "3M"}


async def test_read_since_returns_nothing_at_once_when_nothing_matches(bus: Bus) -> None:
    since = await _before_and_after(bus)
    await bus.publish("other.x", b"elsewhere")
    for subject, at in (("ev.x", since), ("ev.none", 0.0), ("ev.>", time.time() + 3600)):
        started = time.monotonic()
        assert await bus.read_since("S", subject, at) == []
        assert time.monotonic() - started < 0.5
    await _stream(bus, name="EMPTY", subjects=("empty.>",))
    started = time.monotonic()
    assert await bus.read_since("EMPTY", ">", 0) == []
    assert time.monotonic() - started < 0.5


async def test_read_since_refuses_unknown_streams_work_queues_and_bad_arguments(bus: Bus) -> None:
    await _stream(bus)
    await _stream(bus, name="JOBS", subjects=("jobs.>",), work_queue=True)
    with pytest.raises(BusError, match="no stream named 'NOPE'"):
        await bus.read_since("NOPE", "s.x", 0)
    with pytest.raises(BusError, match="work queue"):
        await bus.read_since("JOBS", "jobs.x", 0)
    with pytest.raises(BusError, match="holds no subject"):
        await bus.read_since("S", "jobs.x", 0)
    with pytest.raises(BusError, match="invalid subject"):
        await bus.read_since("S", "s.>.x", 0)
    with pytest.raises(BusError, match="limit"):
        await bus.read_since("S", "s.x", 0, limit=0)
    with pytest.raises(BusError, match="since"):
        await bus.read_since("S", "s.x", float("nan"))


async def test_read_since_leaves_a_durable_consumer_on_the_stream_undisturbed(bus: Bus) -> None:
    await _stream(bus)
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c", ack_wait_s=30))
    for i in range(3):
        await bus.publish("s.x", b"%d" % i)
    [first] = await consumer.fetch(1, 2)
    await first.ack()
    assert [m.data for m in await bus.read_since("S", "s.>", 0)] == [b"0", b"1", b"2"]
    rest = await consumer.fetch(10, 2)
    assert [(m.data, m.num_delivered) for m in rest] == [(b"1", 1), (b"2", 1)]
    for m in rest:
        await m.ack()
    assert await consumer.fetch(10, 0.3) == []
    assert [m.data for m in await bus.read_since("S", "s.>", 0)] == [b"0", b"1", b"2"]  # still stored


async def test_read_since_sees_a_delayed_message_only_once_it_is_due(bus: Bus) -> None:
    await _stream(bus, allow_schedules=True)
    since = time.time()
    due = since + 1.0
    await bus.publish("s.later", b"later", deliver_at=due)
    assert await bus.read_since("S", ">", since) == []  # nor the schedule itself
    for _ in range(40):  # up to 4 s for it to fire
        got = await bus.read_since("S", ">", since)
        if got:
            break
        await asyncio.sleep(0.1)
    assert [(m.subject, m.data) for m in got] == [("s.later", b"later")]
    assert got[0].timestamp >= due - 0.05


async def test_a_cancelled_fetch_loses_no_message(bus: Bus) -> None:
    # The executor stops a lane's long poll by cancelling it: what arrives for the cancelled
    # fetch must reach the next fetch, or be handed back by close, not wait out its ack wait.
    await _stream(bus, work_queue=True)
    spec = ConsumerSpec(stream="S", durable="c", filter_subject="s.a", ack_wait_s=3600)
    consumer = await bus.consumer(spec)
    polling = asyncio.create_task(consumer.fetch(1, 20))
    await asyncio.sleep(0.3)
    polling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await polling
    await bus.publish("s.a", b"one")
    started = time.monotonic()
    [one] = await consumer.fetch(1, 3)
    assert one.data == b"one" and time.monotonic() - started < 2.5
    await one.ack()
    polling = asyncio.create_task(consumer.fetch(1, 20))
    await asyncio.sleep(0.3)
    polling.cancel()
    await asyncio.gather(polling, return_exceptions=True)
    await bus.publish("s.a", b"two")
    await asyncio.sleep(0.3)  # on NATS it reaches the cancelled poll's inbox
    await consumer.close()
    again = await bus.consumer(spec)
    started = time.monotonic()
    [two] = await again.fetch(1, 3)
    assert two.data == b"two" and time.monotonic() - started < 2.5
    await two.ack()
    await again.close()


async def test_a_message_can_be_acked_after_its_consumer_closed(bus: Bus) -> None:
    await _stream(bus, work_queue=True)
    await bus.publish("s.a", b"x")
    spec = ConsumerSpec(stream="S", durable="c", ack_wait_s=1.0)
    consumer = await bus.consumer(spec)
    [msg] = await consumer.fetch(1, 2)
    await consumer.close()
    await msg.ack()
    again = await bus.consumer(spec)
    assert await again.fetch(1, 2.0) == []  # past the 1 s ack wait: it was acked
    assert await bus.subject_counts("S", "s.>") == {}  # and gone from the work queue


async def test_subject_counts_counts_the_messages_held_on_each_matching_subject(bus: Bus) -> None:
    await _stream(bus, work_queue=True, allow_schedules=True)
    assert await bus.subject_counts("S", "s.>") == {}
    for subject in ("s.a.1", "s.a.1", "s.a.2", "s.b"):
        await bus.publish(subject, b"x")
    await bus.publish("s.a.3", b"later", deliver_at=time.time() + 60)  # not due: not counted yet
    assert await bus.subject_counts("S", "s.a.>") == {"s.a.1": 2, "s.a.2": 1}
    assert await bus.subject_counts("S", "s.b") == {"s.b": 1}
    assert await bus.subject_counts("S", "s.*") == {"s.b": 1}
    assert await bus.subject_counts("S", "t.>") == {}
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c", filter_subject="s.a.2"))
    [msg] = await consumer.fetch(1, 2)
    assert (await bus.subject_counts("S", "s.a.2")) == {"s.a.2": 1}  # delivered, not acked: still held
    await msg.ack()
    for _ in range(20):  # an ack on NATS is sent, not confirmed: the count follows it shortly
        if await bus.subject_counts("S", "s.a.>") == {"s.a.1": 2}:
            break
        await asyncio.sleep(0.1)
    assert await bus.subject_counts("S", "s.a.>") == {"s.a.1": 2}
    with pytest.raises(BusError):
        await bus.subject_counts("NOPE", "s.>")
    with pytest.raises(BusError):
        await bus.subject_counts("S", "s..x")


async def test_publish_many_answers_each_message_in_order_and_one_failure_spoils_no_other(bus: Bus) -> None:
    await _stream(bus, dedupe_window_s=60)
    before = await bus.publish("s.x", b"0", msg_id="seen")
    results = await bus.publish_many([
        OutMsg("s.x", b"1", msg_id="a"),
        OutMsg("elsewhere.y", b"no stream", msg_id="b"),
        OutMsg("s.x", b"2"),
        OutMsg("s.x", b"again", msg_id="a"),  # the same id in the same call
        OutMsg("s.x", b"old", msg_id="seen"),  # an id stored before
        OutMsg("s..bad", b"bad subject"),
        OutMsg("s.h", b"3", msg_id="c", headers={"Trace": "t"}),
        OutMsg("s.big", BIG, msg_id="big"),
    ])
    kinds = ["error" if isinstance(r, BusError) else "dup" if r.duplicate else "new" for r in results]
    assert kinds == ["new", "error", "new", "dup", "dup", "error", "new", "new"]
    acks = [r for r in results if isinstance(r, PubAck)]
    assert all(a.stream == "S" for a in acks)
    new_seqs = [r.seq for r, k in zip(results, kinds, strict=True) if k == "new" and isinstance(r, PubAck)]
    assert new_seqs == sorted(new_seqs) and len(set(new_seqs)) == 4 and new_seqs[0] > before.seq
    first, dup_a, dup_seen = results[0], results[3], results[4]
    assert isinstance(first, PubAck) and isinstance(dup_a, PubAck) and isinstance(dup_seen, PubAck)
    assert dup_a.seq == first.seq and dup_seen.seq == before.seq
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c"))
    got = await consumer.fetch(20, 5)
    assert [m.data for m in got[:4]] == [b"0", b"1", b"2", b"3"] and got[4].data == BIG and len(got) == 5
    assert dict(got[3].headers) == {"Trace": "t"}


async def test_publish_many_of_nothing_is_nothing_and_a_closed_bus_refuses_it(bus: Bus) -> None:
    await _stream(bus)
    assert await bus.publish_many([]) == []
    await bus.close()
    with pytest.raises(BusError):
        await bus.publish_many([OutMsg("s.x", b"x")])


async def test_publish_many_stores_a_thousand_messages_once_each(bus: Bus) -> None:
    await _stream(bus, dedupe_window_s=60)
    msgs = [OutMsg("s.n", b"%d" % i, msg_id=f"id-{i}") for i in range(1000)]
    first, again = await asyncio.gather(bus.publish_many(msgs), bus.publish_many(msgs[::-1]))
    assert all(isinstance(r, PubAck) for r in first + again)
    assert sum(not r.duplicate for r in first + again if isinstance(r, PubAck)) == 1000
    seqs = {r.seq for r in first if isinstance(r, PubAck)} | {r.seq for r in again if isinstance(r, PubAck)}
    assert len(seqs) == 1000
    consumer = await bus.consumer(ConsumerSpec(stream="S", durable="c"))
    stored: list[bytes] = []
    for _ in range(20):  # bounded: 1000 messages in fetches of up to 500
        got = await consumer.fetch(500, 0.5)
        stored += [m.data for m in got]
        if not got:
            break
    assert sorted(stored) == sorted(b"%d" % i for i in range(1000))
