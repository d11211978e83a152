"""A small, bounded pool of pre-started single-use Python guests, per app version and limits.

Keys name everything a pre-started guest was fixed to at its start: the prepared
target (kind, path, its stat, env), the app's ``app.py`` stat, and the memory cap of the
call that asked (the deadline and output caps are set at hand-over).
Per key at most ``per_key`` guests wait; across keys at most ``max_total`` (the least
recently used key gives one up when a new key needs room). Every guest serves one call,
except for keys filled with ``reuse=True`` (the app opted in): there at most ``per_key``
guests live, waiting or serving, each given back after its call to serve the next, so a
finished call never starts a guest only for a busy one to be stopped when it comes back.

A guest that ends before it is handed a request (its start-up failed: the app spins or
crashes at import, runs out of memory, ...) puts its key on a back-off of
:data:`BACKOFF_S`: calls run cold meanwhile, so a broken app does not burn CPU restarting.

Thread-safety: :meth:`take`, :meth:`fill` and :meth:`close` run on the event loop's
thread; guests report their own early end from their threads, under the pool's lock.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable

from sandboxes._wasm_prestart import Prestarted
from sandboxes._wasm_run import Outcome

#: Seconds a key runs cold after one of its guests failed to start.
BACKOFF_S = 30.0


class WarmPool:
    """Pre-started guests by key. ``per_key`` and ``max_total`` bound how many wait."""

    def __init__(self, per_key: int, max_total: int) -> None:
        if per_key < 0 or max_total < 0:
            raise ValueError("pre-start counts must not be negative")
        self.per_key = per_key
        self.max_total = max_total
        self._lock = threading.Lock()
        # key -> waiting guests, oldest first; the dict's order is least recently used first
        self._idle: collections.OrderedDict[Hashable, collections.deque[Prestarted]] = collections.OrderedDict()
        # Every guest whose thread has not ended, waiting or serving: close() waits for them all.
        self._all: set[Prestarted] = set()
        self._retired: set[Prestarted] = set()  # in _all, ending after their last call: not live
        self._backoff: dict[Hashable, float] = {}
        self._closed = False
        self.failures = 0  # guests that ended before their call (for tests and diagnostics)

    @property
    def enabled(self) -> bool:
        return self.per_key > 0 and self.max_total > 0 and not self._closed

    def take(self, key: Hashable) -> Prestarted | None:
        """The oldest waiting guest for ``key`` (now no longer waiting), or ``None``."""
        with self._lock:
            waiting = self._idle.get(key)
            if not waiting:
                return None
            self._idle.move_to_end(key)
            return waiting.popleft()

    def waiting(self, key: Hashable) -> int:
        with self._lock:
            return len(self._idle.get(key, ()))

    def fill(
        self, key: Hashable, start: Callable[[Hashable, Callable[[Prestarted, Outcome, bool], None]], Prestarted],
        *, reuse: bool = False,
    ) -> None:
        """Start guests for ``key`` until ``per_key`` wait (with ``reuse``: until ``per_key``
        live, waiting or serving), evicting other keys' if full.

        ``start(key, on_exit)`` makes one guest. A key on back-off gets none.
        """
        if not self.enabled or self._backoff.get(key, 0.0) > time.monotonic():
            return
        for _ in range(self.per_key):  # bounded: at most per_key new guests per fill
            evicted: Prestarted | None = None
            with self._lock:
                waiting = self._idle.setdefault(key, collections.deque())
                self._idle.move_to_end(key)
                if (self._live(key) if reuse else len(waiting)) >= self.per_key:
                    return
                if self._count_waiting() >= self.max_total:
                    evicted = self._evict_one(but=key)
                    if evicted is None:
                        return
            if evicted is not None:
                evicted.stop()
            guest = start(key, self._ended)
            with self._lock:
                if self._closed:
                    guest.stop()
                    return
                if guest.finished:  # failed at once; its _ended already ran and set the back-off
                    return
                self._all.add(guest)
                self._idle.setdefault(key, collections.deque()).append(guest)

    def give_back(self, guest: Prestarted) -> None:
        """A reuse opt-in ``guest`` answered its call: it waits for the next one, or is stopped."""
        with self._lock:
            waiting = self._idle.get(guest.key)
            keep = not self._closed and waiting is not None and len(waiting) < self.per_key \
                and guest in self._all
            if keep and waiting is not None:
                waiting.append(guest)
            else:
                self._forget(guest)
        if not keep:
            guest.stop()

    def close(self, join_s: float = 5.0) -> None:
        """Stop every guest not serving a call, wait up to ``join_s`` s for all their threads (blocking).

        Guests serving calls are stopped by their calls' cancellation (the sandbox does that first).
        """
        with self._lock:
            self._closed = True
            guests = list(self._all)
            self._all.clear()
            self._retired.clear()
            self._idle.clear()
        for guest in guests:
            if not guest.busy:  # busy ones belong to their calls, which the sandbox cancels
                guest.stop()
        deadline = time.monotonic() + join_s
        for guest in guests:
            guest.thread.join(max(deadline - time.monotonic(), 0.0))

    # --- internals -------------------------------------------------------------------

    def _ended(self, guest: Prestarted, outcome: Outcome, served: bool) -> None:
        """A guest ended (on its own thread): drop it; back off its key if it failed to start."""
        with self._lock:
            self._forget(guest)
            waiting = self._idle.get(guest.key)
            if waiting is not None and guest in waiting:
                waiting.remove(guest)
            if not served and guest.calls == 0 and not guest.state.cancelled.is_set() and not self._closed:
                self._backoff[guest.key] = time.monotonic() + BACKOFF_S
                self.failures += 1

    def retire(self, guest: Prestarted) -> None:
        """``guest`` answered its last call: it no longer counts as live (its thread is ending)."""
        with self._lock:
            if guest in self._all:
                self._retired.add(guest)

    def _forget(self, guest: Prestarted) -> None:
        """``guest`` is no longer ours (lock held); a second call does nothing."""
        self._all.discard(guest)
        self._retired.discard(guest)

    def _live(self, key: Hashable) -> int:
        """Guests of ``key`` waiting or serving (lock held; a handful of guests in all)."""
        return sum(1 for g in self._all if g.key == key and g not in self._retired)

    def _count_waiting(self) -> int:
        return sum(len(w) for w in self._idle.values())

    def _evict_one(self, but: Hashable) -> Prestarted | None:
        """Take the oldest waiting guest of the least recently used other key (lock held)."""
        for key, waiting in self._idle.items():
            if key != but and waiting:
                guest = waiting.popleft()
                self._forget(guest)
                return guest
        return None
