"""structlog set-up for the worker and the CLI.

Ids are bound once with structlog's contextvars (``worker_id`` when a worker starts, ``task_id``
when a runner starts a task); asyncio tasks inherit them, so every line carries them.
Logs go to stderr: stdout belongs to the CLI's data and to `launch --tail`.

Records of the standard library's `logging` (asyncpg's "Failed to restore the pool connection
floor; retrying" with its traceback during an outage, asyncio's "Task exception was never
retrieved") are routed through structlog too: one line each, in the chosen format, with the
exception as one ``error`` field instead of a multi-line traceback.
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
    _route_stdlib_logging(numeric)


class _ToStructlog(logging.Handler):
    """A `logging` handler that writes each record as one structlog line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info and record.exc_info[1] is not None:
                fields["error"] = _one_line(record.exc_info[1])
            structlog.get_logger(record.name).log(record.levelno, record.getMessage(), **fields)
        except Exception:
            self.handleError(record)


def _one_line(error: BaseException) -> str:
    try:
        text = " ".join(str(error).split())
    except Exception:
        text = ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _route_stdlib_logging(level: int) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ToStructlog)]:
        root.removeHandler(handler)
    root.addHandler(_ToStructlog())
    root.setLevel(level)


def _identity(_logger: Any, _name: str, event_dict: Any) -> Any:
    return event_dict


def get_logger(name: str) -> Any:
    """A structlog logger named ``name``."""
    return structlog.get_logger(name)
