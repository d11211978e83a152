"""Reloading apps when their files change (``sluice dev``, ``sluice node --reload``).

Polling, once a second: no extra dependency, and it sees edits on any file system.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from runtime.registry import discover

if TYPE_CHECKING:
    from runtime.node import Node

log = structlog.get_logger("sluice.reload")

WATCH_INTERVAL_S = 1.0


def snapshot(app_dirs: Sequence[Path]) -> dict[str, float]:
    """The modification time of every file under ``app_dirs`` (skipping caches and dot files)."""
    out: dict[str, float] = {}
    for app_dir in app_dirs:
        for path in app_dir.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith("."):
                try:
                    out[str(path)] = path.stat().st_mtime
                except OSError:
                    continue
    return out


async def watch(node: Node, app_dirs: Sequence[Path], sandbox: str) -> None:
    """Reload the apps in ``app_dirs`` into ``node`` whenever a file under them changes."""
    seen = await asyncio.to_thread(snapshot, app_dirs)
    while True:
        await asyncio.sleep(WATCH_INTERVAL_S)
        now = await asyncio.to_thread(snapshot, app_dirs)
        if now == seen:
            continue
        seen = now
        log.info("app files changed; reloading")
        errors = await node.load_apps([src for app_dir in app_dirs for src in discover(app_dir, sandbox)])
        if not errors:
            log.info("reloaded", functions=[fn.fqid for fn in node.registry.all()])
