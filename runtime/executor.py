"""The executor: pulls step jobs, calls the sandbox, records what happened.

For each job: load the run state; check the job still holds the run's token (else it
is stale: make sure the current job exists and drop this one); build the guest request;
run it in the function's sandbox; turn the result into a state transition
(:mod:`runtime.outcomes`); save the state by compare-and-set; enqueue the next job;
write history; ack. The order matters: a crash anywhere leaves either the old state
with its job still pending, or the new state whose job a redelivered stale job will
re-send — never a recorded step without a way forward, never a step recorded twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Any

import structlog

from bus import Bus, Message
from runtime.effects import Effects
from runtime.events import normalise
from runtime.flow import FlowControl, Wait
from runtime.history import History
from runtime.ids import new_id, now_ms
from runtime.intake import Intake
from runtime.jobs import Job, branch_message, decode_job, enqueue
from runtime.limits import RuntimeLimits
from runtime.outcomes import Transition, apply_branch, apply_result, resolve, timed_out
from runtime.registry import FunctionDef, Registry
from runtime.state import RunState, RunStore, StaleStateError, StateTooLargeError
from runtime.streams import event_message
from runtime.waits import Waits
from sandboxes import Limits, Result
from sluice.protocol import ProtocolError, decode_response, pack

log = structlog.get_logger("sluice.executor")

# Published when a run fails for good; on_failure handlers are functions triggered by it.
FAILURE_EVENT = "sluice/function.failed"
CAS_TRIES = 8
#: A job whose run can go on at once runs up to this many steps in a row, starting new
#: ones for up to CONTINUE_MS after it was picked (then it sends the job and lets go,
#: so one long run neither holds a slot forever nor outlives the job's ack wait).
CONTINUE_STEPS = 100
CONTINUE_MS = 1_000
#: A job whose handling raised (a bus or history error) comes back after this many seconds.
RETRY_JOB_S = 2.0
#: How many recorded (run, step) pairs the executor remembers to spare finished runs' repairs.
RECORDED_MEMORY = 50_000
# What became of a job after one step (see Executor._advance).
ACK, KEEP, NEXT = "ack", "keep", "next"
# Room for the response's own framing on top of the step output limit.
RESPONSE_SLACK_BYTES = 256 * 1024


class Executor:
    def __init__(
        self, bus: Bus, runs: RunStore, registry: Registry, history: History, limits: RuntimeLimits,
        *, waits: Waits, effects: Effects, flow: FlowControl, concurrency: int = 8,
    ) -> None:
        self._bus = bus
        self._flow = flow
        self._waits = waits
        self._effects = effects
        self._runs = runs
        self._registry = registry
        self._history = history
        self._limits = limits
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._intake: Intake | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()  # set when a job finishes: a slot is free
        self._stopping = asyncio.Event()
        # (run, step) whose final row this process wrote: a finished run's repair skips them.
        self._recorded: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()

    async def start(self) -> None:
        # Jobs come in turns between functions (runtime/intake.py), one lane per function.
        self._intake = Intake(self._bus, self._registry, self._limits, prefetch=max(1, self._concurrency),
                              free=lambda: self._concurrency - len(self._inflight))
        await self._intake.start()
        self._task = asyncio.create_task(self._loop(), name="executor")

    async def functions_changed(self) -> None:
        """The registry changed (apps loaded): take the jobs of the functions it holds now."""
        if self._intake is not None:
            await self._intake.sync()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking jobs (those fetched and not started are handed back); give running
        calls ``grace_s`` to finish, then cancel them (their jobs stay unacked and run again
        elsewhere or after a restart)."""
        self._stopping.set()
        self._room.set()
        if self._intake is not None:
            await self._intake.halt()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._intake is not None:
            await self._intake.close()
            self._intake = None

    async def recover(self) -> int:
        """Re-send the job of every unfinished run (for a single node after a restart: its
        own jobs in flight when it died would otherwise wait out the ack wait). Stale
        duplicates are harmless: the token check and CAS let only one advance a run."""
        boot = new_id()
        count = 0
        for run_id in await self._runs.ids():
            state = await self._runs.load(run_id)
            if state is not None and not state.final:
                await enqueue(self._bus, state, nonce=f"recover-{boot}")
                count += 1
        if count:
            log.info("re-sent jobs of unfinished runs", runs=count)
        return count

    async def _loop(self) -> None:
        """Start the next job (in the intake's fair order) whenever a slot is free."""
        assert self._intake is not None
        while not self._stopping.is_set():
            if len(self._inflight) >= self._concurrency:
                self._room.clear()
                await self._room.wait()
                continue
            msg = await self._intake.next()
            if msg is None:  # halted
                break
            task = asyncio.create_task(self._handle(msg))
            self._inflight.add(task)
            task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._room.set()

    async def _handle(self, msg: Message) -> None:
        picked = now_ms()
        try:
            job = decode_job(msg.data)
        except ProtocolError as exc:
            log.error("dropping a malformed job", error=str(exc))
            await msg.term()
            return
        try:
            done = await self.process(job, picked)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Soon, not after the ack wait (hours): a transient bus error must not stall the
            # run. The redelivered job finds the state as far as it got (the stale path
            # re-sends its current job) or runs the step again (at least once).
            log.exception("job failed; it will be redelivered", run_id=job.run_id, in_s=RETRY_JOB_S)
            with contextlib.suppress(Exception):
                await msg.nak(delay_s=RETRY_JOB_S)
            return
        if done:
            await msg.ack()

    async def process(self, job: Job, picked: int) -> bool:
        """Advance the run ``job`` names; ``True`` when the job can be acked.

        A step whose run can go on at once is followed by the next one right here, under
        the same job (see :meth:`_advance`), up to :data:`CONTINUE_STEPS` steps and
        :data:`CONTINUE_MS`: the saved state and its revision are in hand, so the hop
        through the STEPS stream (publish, fetch, load, ack) is skipped. A crash meanwhile
        leaves the job unacked with an older token: redelivered, it re-sends the current
        state's job (the stale path below), as after a crash between save and enqueue.
        """
        state = await self._runs.load(job.run_id)
        if state is None:
            return True
        for left in range(CONTINUE_STEPS, 0, -1):
            may_continue = left > 1 and now_ms() - picked < CONTINUE_MS
            after = await self._advance(state, job, picked, may_continue=may_continue)
            if after is not NEXT:
                return after is ACK
            picked = now_ms()
            job = Job(run_id=state.id, token=state.token, enqueued_at=picked)
        return True

    async def _advance(self, state: RunState, job: Job, picked: int, *, may_continue: bool) -> str:
        """One step of ``state`` under ``job``. Returns :data:`ACK` (done with the job),
        :data:`KEEP` (leave it unacked: it comes back), or, only if ``may_continue``,
        :data:`NEXT`: the run was saved with its next step due now and no job sent for
        it, so the caller must run that step itself."""
        if state.final:
            return ACK
        if job.token != state.token:
            # Stale (redelivered after the run moved on). If the crash came between saving
            # the state and sending its job, this re-sends it; the dedupe window makes a
            # second copy of an existing job a no-op.
            await enqueue(self._bus, state, deliver_at_ms=self._due(state))
            return ACK
        if job.target is not None:
            return ACK if await self._branch(state, job, picked) else KEEP
        if state.planned:
            return ACK  # an old job from before the run planned its branches: they have their own jobs
        early: list[dict[str, Any]] = []
        if state.pending is not None:
            if now_ms() < state.pending["expires"]:
                # Too early (a recovery re-send): the timer job for the deadline exists.
                await enqueue(self._bus, state, deliver_at_ms=state.pending["expires"])
                return ACK
            await self._waits.forget(state)
            early.append(resolve(state, timed_out(state.pending), now_ms()))
        fn = self._registry.get(state.function)
        err = self._refusal(state, fn)
        if err is not None:
            state.status, state.ended_at, state.error, state.token = "failed", now_ms(), err, new_id()
            await self._save_and_record(state, Transition(attempts=early), started=picked)
            return ACK
        assert fn is not None
        slot = await self._flow.acquire(fn, state)
        if isinstance(slot, Wait):  # concurrency or throttle: not now, come back then
            await enqueue(self._bus, state, deliver_at_ms=slot.at_ms, nonce=slot.nonce)
            return ACK
        started = now_ms()
        async with slot:
            trans = await self._call(state, fn, job, picked)
        trans.attempts[:0] = early
        go_on = await self._save_and_record(state, trans, started=started, may_continue=may_continue)
        return NEXT if go_on else ACK

    async def _branch(self, state: RunState, job: Job, picked: int) -> bool:
        """Run one parallel branch (a targeted call) and record it, retrying the CAS while
        sibling branches record theirs."""
        target = job.target
        assert target is not None
        if target not in state.planned:
            return True  # already recorded
        fn = self._registry.get(state.function)
        if fn is None:
            return True  # the main path fails the run once the branches are gone
        slot = await self._flow.acquire(fn, state)
        if isinstance(slot, Wait):
            msg = branch_message(state, target, deliver_at_ms=slot.at_ms, nonce=slot.nonce)
            await self._bus.publish_batch([msg])
            return True
        started = now_ms()
        async with slot:
            result, ops = await self._run_guest(state, fn, target)
        ended = now_ms()
        timings = {"queue_ms": max(0, picked - job.enqueued_at), "sandbox_ms": round(result.duration_ms, 3),
                   **result.timings}
        for _ in range(CAS_TRIES):
            trans = apply_branch(state, fn, target, result, self._limits, started=started, ended=ended,
                                 timings=timings, ops=ops)
            try:
                await self._runs.save(state)
                break
            except StaleStateError:
                fresh = await self._runs.load(state.id)
                if fresh is None or fresh.final or fresh.token != job.token or target not in fresh.planned:
                    return True
                state = fresh
        else:
            return False  # leave the job unacked: it comes back and tries again
        if trans.branch_retry_at is not None:
            msg = branch_message(state, target, deliver_at_ms=trans.branch_retry_at)
            await self._bus.publish_batch([msg])
        if trans.next_job_at is not None:
            await enqueue(self._bus, state)
        for att in trans.attempts:
            log.info("parallel step " + att["status"], run_id=state.id, step_id=target, step=att["name"])
            await self._record_step(state.id, att)
        await self._history.record_run(state.row())
        return True

    async def _run_guest(self, state: RunState, fn: FunctionDef,
                         target: str | None) -> tuple[Result, list[dict[str, Any]] | None]:
        """One sandbox call for ``state``; its ops decoded with node ops carried out (``None``
        if the guest's output is not valid: the caller records why)."""
        request: dict[str, Any] = {
            "v": 1, "kind": "call", "function": fn.id, "event": state.event,
            "steps": state.steps, "run": {"id": state.id, "attempt": state.attempt}, "target": target,
            "now_ms": now_ms(),
        }
        if state.events != [state.event]:  # else left out: the guest decodes the event once, not twice
            request["events"] = state.events
        limits = Limits(timeout_s=fn.timeout_ms / 1000,
                        max_stdout_bytes=self._limits.step_output_bytes + RESPONSE_SLACK_BYTES)
        result = await self._registry.sandbox_for(fn).run(fn.target, pack(request), limits)
        if not result.ok:
            return result, None
        try:
            return result, await self._effects.perform(decode_response(result.stdout)["ops"], state, fn)
        except ProtocolError:
            return result, None

    @staticmethod
    def _refusal(state: RunState, fn: FunctionDef | None) -> dict[str, str] | None:
        """Why the run must fail instead of being called, if it must: its function is gone,
        it waited too long to start, or it ran past its finish timeout."""
        if fn is None:
            return {"name": "FunctionNotFound", "message": f"function {state.function!r} is not registered"}
        now = now_ms()
        start_ms = fn.raw.get("start_timeout_ms")
        if start_ms and state.started_at is None and now - state.created_at > start_ms:
            return {"name": "StartTimeout", "message": f"the run did not start within {start_ms} ms"}
        finish_ms = fn.raw.get("timeout_ms")
        if finish_ms and state.started_at is not None and now - state.started_at > finish_ms:
            return {"name": "FunctionTimeout", "message": f"the run did not finish within {finish_ms} ms"}
        return None

    @staticmethod
    def _due(state: RunState) -> int | None:
        return state.pending["expires"] if state.pending is not None else None

    async def _call(self, state: RunState, fn: FunctionDef, job: Job, picked: int) -> Transition:
        bound = log.bind(run_id=state.id, function=fn.fqid, attempt=state.attempt)
        started = now_ms()
        result, ops = await self._run_guest(state, fn, None)
        ended = now_ms()
        timings: dict[str, float] = {"queue_ms": max(0, picked - job.enqueued_at), "prepare_ms": started - picked,
                                     "sandbox_ms": round(result.duration_ms, 3), **result.timings}
        if result.warm:
            timings["warm"] = 1
        trans = apply_result(state, fn, result, self._limits, started=started, ended=ended, timings=timings,
                             ops=ops)
        for att in trans.attempts:
            bound.info("step " + att["status"], step_id=att["step_id"], step=att["name"],
                       ms=att["duration_ms"], error=(att["error"] or {}).get("message"))
        if state.final:
            bound.info("run " + state.status, error=(state.error or {}).get("message"))
        return trans

    async def _save_and_record(self, state: RunState, trans: Transition, *, started: int,
                               may_continue: bool = False) -> bool:
        """Save ``state`` by CAS, send its next job, write history. With ``may_continue``, a
        run whose next step is due now and needs nothing else (no branches, wait or
        invoke) gets no job: ``True`` tells the caller to run that step itself."""
        saved_at = now_ms()
        try:
            await self._runs.save(state)
        except StaleStateError:
            log.info("run moved on elsewhere; dropping this result", run_id=state.id)
            return False
        except StateTooLargeError as exc:
            await self._fail_oversized(state.id, str(exc))
            return False
        go_on = False
        if trans.next_job_at is not None and not state.final:
            due = trans.next_job_at if trans.next_job_at > now_ms() else None
            go_on = may_continue and due is None and not state.planned and trans.wait is None \
                and trans.invoke is None
            if not go_on:
                await enqueue(self._bus, state, deliver_at_ms=due)
        record_ms = now_ms() - saved_at
        for att in trans.attempts:
            att["timings"] = {**att.get("timings", {}), "record_ms": record_ms}
            await self._record_step(state.id, att)
        await self._history.record_run(state.row())
        if trans.invoke is not None:
            await self._start_child(state, trans.invoke)
        if trans.wait is not None:
            await self._waits.register(state, since_ms=started)
        if state.final:
            await self._finished(state)
        return go_on

    async def _record_step(self, run_id: str, attempt: dict[str, Any]) -> None:
        await self._history.record_step(run_id, attempt)
        if attempt.get("status") in ("completed", "failed"):
            self._recorded[(run_id, attempt["step_id"])] = None
            if len(self._recorded) > RECORDED_MEMORY:
                self._recorded.popitem(last=False)

    async def _start_child(self, parent: RunState, invoke: dict[str, Any]) -> None:
        assert parent.pending is not None
        step = parent.pending["id"]
        fn = self._registry.get(invoke["function"])
        if fn is None:
            err = {"name": "FunctionNotFound", "message": f"cannot invoke {invoke['function']!r}: no such function"}
            await self._waits.resume(parent.id, step, {"error": err})
            return
        now = now_ms()
        data = invoke.get("data")
        event = {"id": f"invoke-{invoke['child']}", "name": "sluice/function.invoked", "ts": now, "user": {},
                 "data": data if isinstance(data, dict) else {"value": data}}
        child = RunState(id=invoke["child"], app=fn.app, function=fn.fqid, event=event, events=[event],
                         created_at=now, parent={"run": parent.id, "step": step})
        if await self._runs.create(child):
            await self._history.record_run(child.row())
            await enqueue(self._bus, child)
            log.info("invoked", run_id=parent.id, child_run_id=child.id, function=fn.fqid)

    async def _finished(self, state: RunState) -> None:
        """Tell whoever waits on a finished run: an invoking parent, and on_failure handlers.
        And write every memoized step to history again, where a crash lost its row."""
        for step_id, memo in state.steps.items():
            rec = state.records.get(step_id)
            if self._recorded.pop((state.id, step_id), False) is None:
                continue  # this process wrote its row, queued before the run's final one
            if rec is not None:
                await self._history.repair_step(state.id, {
                    **rec, "step_id": step_id, "status": "failed" if "error" in memo else "completed",
                    "output": memo.get("data"), "error": memo.get("error"), "timings": {}, "logs": "",
                    "duration_ms": (rec.get("ended_at") or 0) - (rec.get("started_at") or 0)})
        if state.parent is not None:
            result = {"data": state.output} if state.status == "completed" else {"error": state.error or {
                "name": "Cancelled", "message": f"run {state.id} was {state.status}"}}
            await self._waits.resume(state.parent["run"], state.parent["step"], result)
        if state.status == "failed" and state.event.get("name") != FAILURE_EVENT:  # no failure loops
            event = {"id": f"failed-{state.id}", "name": FAILURE_EVENT,
                     "data": {"function_id": state.function, "run_id": state.id, "error": state.error,
                              "event": state.event}}
            msg = event_message(normalise(event, "failure event", self._limits, now_ms()))
            await self._bus.publish_batch([msg])

    async def _fail_oversized(self, run_id: str, message: str) -> None:
        fresh = await self._runs.load(run_id)
        if fresh is None or fresh.final:
            return
        fresh.status, fresh.ended_at, fresh.token = "failed", now_ms(), new_id()
        fresh.error = {"name": "StateTooLarge", "message": message}
        with contextlib.suppress(StaleStateError):
            await self._runs.save(fresh)
            await self._history.record_run(fresh.row())

