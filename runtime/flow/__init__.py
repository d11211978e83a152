"""Flow control: concurrency, throttle, rate limit, debounce, batch and priority, cluster-wide.

Every decision is made against state on the bus (KV bucket ``sluice-flow``, compare-and-
set only) and timers are delayed messages (subject ``sluice.steps.flow`` on the
``SLUICE_STEPS`` stream), so it holds across nodes and survives restarts. Options are the
ones the SDK introspects into ``FunctionDef.raw`` (see ``sluice/_options.py``); semantics
follow Inngest's and are described in ``docs/flow-control.md``.

The interface, and how the scheduler and executor call it::

    flow = FlowControl(bus, registry.get)          # one per node
    await flow.start(starter=scheduler.start_flow_run)   # starter only where the scheduler runs
    await flow.recover()                           # optional, at boot: re-send lost window timers
    ...
    flow.check(fn)   # at registration: raises FlowOptionError for a bad option

    # Scheduler, for each (event, fn) match, BEFORE creating the run:
    match await flow.admit(fn, event):
        case Admission.SKIP | Admission.HELD:
            continue                               # no run for this event now
        case Admission.START:
            ...                                    # create the run as today

    # Scheduler: the starter. Called by FlowControl when a debounce/batch window closes.
    async def start_flow_run(fn: FunctionDef, start: Start) -> None:
        state = RunState(id=start.run_id, app=fn.app, function=fn.fqid, event=start.event,
                         events=start.events, created_at=now_ms())
        if not await runs.create(state):           # a second call for the same window
            state = await runs.load(start.run_id)
            if state is None or state.status != "queued":
                return
        await history.record_run(state.row())
        await enqueue(bus, state)                  # must be idempotent; raising retries it

    # Executor, right before the sandbox call (in ``process`` after the refusal check, and
    # in ``_branch`` before ``_run_guest``):
    slot = await flow.acquire(fn, state)
    if isinstance(slot, Wait):                     # not now: come back at slot.at_ms
        await enqueue(bus, state, deliver_at_ms=slot.at_ms, nonce=slot.nonce)
        return True                                # ack this copy of the job
    async with slot:                               # renews the lease; releases on exit
        trans = await self._call(state, fn, job, picked)
    # In ``_branch`` re-send only that branch's job on a Wait:
    #   msg = branch_message(state, target, deliver_at_ms=slot.at_ms, nonce=slot.nonce)
    #   await bus.publish(msg.subject, msg.data, msg_id=msg.msg_id, deliver_at=msg.deliver_at)
    # (``msg.nak(delay_s)`` works too, but a nak'd job is still unacked, so a long queue of
    # waiting jobs could count against the executor consumer's max_ack_pending; re-sending
    # and acking keeps the consumer's pending set to the jobs actually running.)

    # Anywhere a first job is enqueued, priority may delay low-priority runs:
    delay_s = max(0, -flow.priority(fn, event))    # -600..600, seconds

Bus objects: the stream ``SLUICE_STEPS`` must exist (``runtime.streams.steps_stream``; it
holds ``sluice.steps.>`` and allows schedules). FlowControl creates the bucket
``sluice-flow`` and the durable consumer ``flow`` (filter ``sluice.steps.flow``) itself.
"""

from runtime.flow.concurrency import Slot
from runtime.flow.control import FlowControl, Lookup, Starter
from runtime.flow.decisions import Admission, Start, Wait
from runtime.flow.options import FlowOptionError, FlowOptions
from runtime.flow.priority import PRIORITY_MAX, PRIORITY_MIN
from runtime.flow.store import FIRE_SUBJECT, FLOW_BUCKET, FlowBusyError

__all__ = [
    "FIRE_SUBJECT", "FLOW_BUCKET", "PRIORITY_MAX", "PRIORITY_MIN", "Admission", "FlowBusyError", "FlowControl",
    "FlowOptionError", "FlowOptions", "Lookup", "Slot", "Start", "Starter", "Wait",
]
