"""Logging: structlog, key-value lines for people, JSON lines for machines.

``SLUICE_LOG_FORMAT`` is ``console`` (the default on a terminal) or ``json``;
``SLUICE_LOG_LEVEL`` is ``debug``, ``info`` (default), ``warning`` or ``error``.
Every run-related line carries ``run_id`` (and ``step_id`` where there is one).
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(fmt: str | None = None, level: str | None = None) -> None:
    fmt = fmt or os.environ.get("SLUICE_LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
    level_name = (level or os.environ.get("SLUICE_LOG_LEVEL") or "info").lower()
    if level_name not in LEVELS:
        raise ValueError(f"SLUICE_LOG_LEVEL must be one of {', '.join(LEVELS)}, not {level_name!r}")
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    elif fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        raise ValueError(f"SLUICE_LOG_FORMAT must be console or json, not {fmt!r}")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level_name]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
