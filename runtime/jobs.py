"""Step jobs: the message that tells some executor "advance run R, holding token T".

A job carries no payload but the run id and the token; the run state in KV is the
truth. The job's ``msg_id`` is the token, so publishing the same job twice (a retry
after a crash) is one message within the stream's dedupe window. A job goes to its run's
function's own subject (:func:`runtime.streams.job_subject`), so the executor can take
turns between functions instead of reading one queue first come, first served.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import Bus, OutMsg
from runtime.ids import now_ms
from runtime.state import RunState
from runtime.streams import job_subject
from sluice.protocol import ProtocolError, pack, unpack


@dataclass(frozen=True)
class Job:
    run_id: str
    token: str
    enqueued_at: int  # ms since epoch: when the job was meant to become runnable
    target: str | None = None  # a parallel branch's step id: run only that step


def job_messages(state: RunState, *, deliver_at_ms: int | None = None, nonce: str = "") -> list[OutMsg]:
    """The jobs ``state`` needs now: one per planned parallel branch, else one for the run.
    ``nonce`` makes a deliberate re-send distinct (otherwise the dedupe window drops it)."""
    if state.planned:
        return [branch_message(state, sid, deliver_at_ms=deliver_at_ms, nonce=nonce) for sid in state.planned]
    return [_message(state, {"run": state.id, "token": state.token}, state.token, deliver_at_ms, nonce)]


def branch_message(state: RunState, step_id: str, *, deliver_at_ms: int | None = None, nonce: str = "") -> OutMsg:
    attempt = state.planned[step_id].get("attempt", 0)
    return _message(state, {"run": state.id, "token": state.token, "target": step_id},
                    f"{state.token}:{step_id}:{attempt}", deliver_at_ms, nonce)


def _message(state: RunState, body: dict[str, str], msg_id: str, deliver_at_ms: int | None,
             nonce: str) -> OutMsg:
    when = deliver_at_ms if deliver_at_ms is not None else now_ms()
    return OutMsg(
        subject=job_subject(state.function),  # each function's jobs on its own subject
        data=pack({**body, "at": when}),
        msg_id=msg_id + (f":{nonce}" if nonce else ""),
        deliver_at=deliver_at_ms / 1000 if deliver_at_ms is not None else None,
    )


def decode_job(data: bytes) -> Job:
    doc = unpack(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("run"), str) or not isinstance(doc.get("token"), str):
        raise ProtocolError("job must be a map with 'run' and 'token' strings")
    target = doc.get("target")
    return Job(run_id=doc["run"], token=doc["token"], enqueued_at=int(doc.get("at") or 0),
               target=target if isinstance(target, str) else None)


async def enqueue(bus: Bus, state: RunState, *, deliver_at_ms: int | None = None, nonce: str = "") -> None:
    """Publish the jobs ``state`` needs (see :func:`job_messages`)."""
    await bus.publish_batch(job_messages(state, deliver_at_ms=deliver_at_ms, nonce=nonce))
