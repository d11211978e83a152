"""Indexes keyed by event name: what waits and cancel rules share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bus import KeyValue
from runtime.streams import name_token


async def for_indexed_names(index: KeyValue, events: list[dict[str, Any]],
                            handle: Callable[[dict[str, Any]], Awaitable[int]]) -> int:
    """``handle(event)`` for each of ``events``, in order, skipping (with one lookup per
    name) the names nothing is indexed under in ``index`` (keys ``<name token>.<...>``):
    the common case, asked for every event. Returns the sum of what ``handle`` returned."""
    done = 0
    empty: set[str] = set()
    for event in events:
        if event["name"] in empty:
            continue
        if not await index.keys(prefix=f"{name_token(event['name'])}."):
            empty.add(event["name"])
            continue
        done += await handle(event)
    return done
