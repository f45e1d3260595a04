"""Print capture: ``print()`` inside a workflow goes to that task's log, not to stdout.

One proxy replaces ``sys.stdout`` for the whole process; a context variable tells it which
task's log the current code writes to. asyncio tasks and the threads of sync steps inherit the
variable, so two tasks running at once in one worker never mix their output.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import sys
import threading
from typing import Any, TextIO

from durable.replay.engine import Engine


class TaskLog:
    """Collects text written by one task and hands complete lines to its engine."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.loop = loop
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        """Add text; each complete line becomes one log line."""
        with self._lock:
            data = self._partial + text
            *lines, self._partial = data.split("\n")
        for line in lines:
            self._emit(line)

    def flush_partial(self) -> None:
        """A final unterminated line is still a line."""
        with self._lock:
            rest, self._partial = self._partial, ""
        if rest:
            self._emit(rest)

    def _emit(self, line: str) -> None:
        if _on_loop_thread(self.loop):
            self.engine.log_line(line)
        else:
            self.loop.call_soon_threadsafe(self.engine.log_line, line)


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


current_log: contextvars.ContextVar[TaskLog | None] = contextvars.ContextVar(
    "durable_current_log", default=None
)


class _RoutingStdout(io.TextIOBase):
    """Writes to the current task's log when there is one, else to the real stream."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def write(self, text: str) -> int:
        sink = current_log.get()
        if sink is None:
            return self.real.write(text)
        sink.write(text)
        return len(text)

    def flush(self) -> None:
        if current_log.get() is None:
            self.real.flush()

    def isatty(self) -> bool:
        return self.real.isatty()

    def fileno(self) -> int:
        return self.real.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def install() -> None:
    """Route ``sys.stdout`` through the task logs (idempotent)."""
    if not isinstance(sys.stdout, _RoutingStdout):
        sys.stdout = _RoutingStdout(sys.stdout)
