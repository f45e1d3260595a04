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


class LineSink:
    """Turns written text into lines (thread-safe: sync steps print from threads)."""

    def __init__(self) -> None:
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
        raise NotImplementedError


class TaskLog(LineSink):
    """What workflow code prints: lines handed to its engine at once, in order."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.engine = engine
        self.loop = loop
        self._thread = threading.get_ident()

    def _emit(self, line: str) -> None:
        if threading.get_ident() == self._thread:
            self.engine.log_line(line)
        else:  # not workflow code (which runs on the loop's thread): hand it over
            self.loop.call_soon_threadsafe(self.engine.log_line, line)


class StepOutput(LineSink):
    """What a step's code prints: kept until the step's outcome is delivered, then written
    to the task's log at that point (a replay counts them there without the step running)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def _emit(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)


current_log: contextvars.ContextVar[LineSink | None] = contextvars.ContextVar(
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
