"""structlog set-up for the worker and the CLI.

Ids are bound once with structlog's contextvars (``worker_id`` when a worker starts, ``task_id``
when a runner starts a task); asyncio tasks inherit them, so every line carries them.
Logs go to stderr: stdout belongs to the CLI's data and to `launch --tail`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

LogFormat = Literal["console", "json"]


def configure(log_format: LogFormat = "console", level: str = "info") -> None:
    """Configure structlog (and stdlib logging) once for this process."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer: Any
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        stream = sys.__stderr__
        renderer = structlog.dev.ConsoleRenderer(colors=bool(stream and stream.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if log_format == "json" else _identity,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # sys.__stderr__: the worker reroutes sys.stdout into task logs, never stderr.
        logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__),
        cache_logger_on_first_use=False,
    )


def _identity(_logger: Any, _name: str, event_dict: Any) -> Any:
    return event_dict


def get_logger(name: str) -> Any:
    """A structlog logger named ``name``."""
    return structlog.get_logger(name)
