"""Step jobs: the message that tells some executor "advance run R, holding token T".

A job carries no payload but the run id and the token; the run state in KV is the
truth. The job's ``msg_id`` is the token, so publishing the same job twice (a retry
after a crash) is one message within the stream's dedupe window.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import Bus, OutMsg
from runtime.ids import now_ms
from runtime.state import RunState
from runtime.streams import STEPS_SUBJECT
from sluice.protocol import ProtocolError, pack, unpack


@dataclass(frozen=True)
class Job:
    run_id: str
    token: str
    enqueued_at: int  # ms since epoch: when the job was meant to become runnable


def job_message(state: RunState, *, deliver_at_ms: int | None = None, nonce: str = "") -> OutMsg:
    """The job for ``state``'s current token. ``nonce`` makes a deliberate re-send distinct."""
    when = deliver_at_ms if deliver_at_ms is not None else now_ms()
    body = pack({"run": state.id, "token": state.token, "at": when})
    return OutMsg(
        subject=STEPS_SUBJECT,
        data=body,
        msg_id=state.token + (f":{nonce}" if nonce else ""),
        deliver_at=deliver_at_ms / 1000 if deliver_at_ms is not None else None,
    )


def decode_job(data: bytes) -> Job:
    doc = unpack(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("run"), str) or not isinstance(doc.get("token"), str):
        raise ProtocolError("job must be a map with 'run' and 'token' strings")
    return Job(run_id=doc["run"], token=doc["token"], enqueued_at=int(doc.get("at") or 0))


async def enqueue(bus: Bus, state: RunState, *, deliver_at_ms: int | None = None, nonce: str = "") -> None:
    msg = job_message(state, deliver_at_ms=deliver_at_ms, nonce=nonce)
    await bus.publish(msg.subject, msg.data, msg_id=msg.msg_id, deliver_at=msg.deliver_at)
