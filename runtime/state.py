"""Run state: one msgpack document a run, in a JetStream KV bucket, changed only by CAS.

The state holds what a run needs to go on anywhere: its event, the memoized output of
every step, its status, and ``token`` — the id of the one job that may advance it.
Every change is a compare-and-set on the entry's revision, so two nodes (or one node
and a redelivered job) can never both record a step: the loser's write is refused.
That is the "exactly-once memoization" of DESIGN §4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bus import Entry, KeyExistsError, KeyValue, RevisionMismatchError
from runtime.ids import new_id
from sluice.protocol import pack, unpack

FINAL = frozenset({"completed", "failed", "cancelled"})


class StaleStateError(Exception):
    """The state changed since it was read; whoever changed it carries the run on."""


class StateTooLargeError(Exception):
    """The run's state would pass its size limit."""


@dataclass
class RunState:
    id: str
    app: str
    function: str  # "app/fn"
    event: dict[str, Any]
    events: list[dict[str, Any]]
    created_at: int
    status: str = "queued"
    token: str = field(default_factory=new_id)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempt: int = 0  # attempts so far at the step (or function call) now pending
    started_at: int | None = None
    ended_at: int | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    # What the run waits for while sleeping or waiting: {"kind": "sleep"|"wait"|"invoke",
    # "id": step id, "name", "expires": ms, and for waits "event", "if"; for invokes "child"}.
    pending: dict[str, Any] | None = None
    # Set on a run started by ctx.step.invoke: {"run": parent run id, "step": step id}.
    parent: dict[str, Any] | None = None
    # Parallel branches planned and not yet recorded: {step id: {"name", "attempt"}}. While
    # any remain, the run's jobs are one per branch (a "targeted" call each).
    planned: dict[str, dict[str, Any]] = field(default_factory=dict)
    replay_of: str | None = None
    # Where each memoized step came from, {step id: {"name", "attempt", "started_at", "ended_at"}},
    # so history can be repaired from the state if a crash lost a step's row.
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    revision: int = 0  # the KV revision this copy was read at (not stored)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def row(self) -> dict[str, Any]:
        """The run as the history store and the API show it."""
        return {
            "id": self.id, "function": self.function, "app": self.app, "event_id": self.event.get("id"),
            "status": self.status, "created_at": self.created_at, "started_at": self.started_at,
            "ended_at": self.ended_at, "output": self.output, "error": self.error, "attempt": self.attempt,
            **({"replay_of": self.replay_of} if self.replay_of else {}),
            **({"parent": self.parent} if self.parent else {}),
        }

    def encode(self) -> bytes:
        # Not dataclasses.asdict: it deep-copies every step output only for pack to read them.
        return pack({name: getattr(self, name) for name in self.__dataclass_fields__ if name != "revision"})

    @classmethod
    def decode(cls, entry: Entry) -> RunState:
        doc = unpack(entry.value)
        doc["revision"] = entry.revision
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in doc.items() if k in known})


class RunStore:
    """Run states in a KV bucket."""

    def __init__(self, kv: KeyValue, *, max_bytes: int) -> None:
        self._kv = kv
        self._max_bytes = max_bytes

    async def create(self, state: RunState) -> bool:
        """Store a new run; ``False`` if a run with this id already exists."""
        try:
            state.revision = await self._kv.create(state.id, self._encode(state))
        except KeyExistsError:
            return False
        return True

    async def load(self, run_id: str) -> RunState | None:
        entry = await self._kv.get(run_id)
        return None if entry is None else RunState.decode(entry)

    async def save(self, state: RunState) -> None:
        """Write ``state`` if nobody changed it since it was read; else :class:`StaleStateError`."""
        try:
            state.revision = await self._kv.update(state.id, self._encode(state), last=state.revision)
        except RevisionMismatchError:
            raise StaleStateError(state.id) from None

    async def ids(self) -> list[str]:
        return await self._kv.keys()

    def _encode(self, state: RunState) -> bytes:
        data = state.encode()
        if len(data) > self._max_bytes:
            raise StateTooLargeError(
                f"run state is {len(data)} bytes; the limit is {self._max_bytes} a run"
            )
        return data
