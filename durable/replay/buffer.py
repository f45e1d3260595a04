"""What a run has yet to write: events and log lines, batched into as few round trips as can be.

Values handed out synchronously (``now``, ``random``, ``uuid4``), timer deadlines, delivered
outcomes and printed lines wait here; the next write carries them. Every effect that reaches
outside the process (a step's code, a transaction, a child launch, a promise completion)
flushes first, so nothing it may depend on is unrecorded.

A delivered step outcome waits here too (`buffer_soon`): the code after it is the workflow's
own, which has no effect outside the process until its next effect, and every such effect
flushes first; the final write carries it when the workflow returns. So "a step, then return"
costs one commit, not two. A crash before that write runs the step again, as a crash right after
the step's code always could (SPEC 7.1: at-least-once until recorded). If no write comes within
`DEFERRED_FLUSH_DELAY`, a background flush records it anyway, so a workflow that computes for a
while after a step does not leave its outcome unrecorded meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from durable import serialization
from durable.replay.control import LeaseLost
from durable.replay.journal import Journal, NewEvent, Writes

# How long a buffered outcome may wait for the next write to carry it (seconds).
DEFERRED_FLUSH_DELAY = 0.02


class WriteBuffer:
    """Buffered events and lines of one run, and the writes that carry them."""

    def __init__(
        self,
        journal: Journal,
        *,
        activity: Callable[[], contextlib.AbstractContextManager[Any]],
        log_lines: int,
        log_base: int,
        on_lost: Callable[[BaseException], None],
    ) -> None:
        self.journal = journal
        self._activity = activity
        self._on_lost = on_lost
        self.log_base = log_base
        self._recorded_lines = log_lines
        self.next_line = 0
        self._events: dict[int, NewEvent] = {}
        self._lines: list[tuple[int, str]] = []
        self._generation = 0
        self._flushed_generation = 0
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._deferred: asyncio.TimerHandle | None = None
        self._background_error: BaseException | None = None
        # The worker's loop: workflow code that prints or buffers runs on a loop of its own,
        # and background writes belong on this one (set when the run starts).
        self.loop: asyncio.AbstractEventLoop | None = None

    def _real_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop if self.loop is not None else asyncio.get_running_loop()

    def detach(self) -> None:
        """Forget the owner's callbacks (they tie it in a reference cycle)."""
        self._activity = contextlib.nullcontext
        self._on_lost = _ignore

    # -- events ------------------------------------------------------------------------

    def buffer(self, seq: int, kind: str, label: str, payload: Any) -> None:
        """Queue an event for the next write (a later write at the same seq replaces it)."""
        self.buffer_text(seq, kind, label, serialization.dumps(payload, f"{kind} {label!r} record"))

    def buffer_text(self, seq: int, kind: str, label: str, text: str) -> None:
        """`buffer` with the payload already serialised to JSON text."""
        self._events[seq] = NewEvent(seq, kind, label, text)
        self._generation += 1

    def buffer_soon(self, seq: int, kind: str, label: str, text: str) -> None:
        """Buffer an event the workflow may go on without; the next write carries it. If none
        does within DEFERRED_FLUSH_DELAY, a background flush does."""
        self.buffer_text(seq, kind, label, text)
        if self._deferred is None:
            self._deferred = self._real_loop().call_later(DEFERRED_FLUSH_DELAY, self._deferred_due)

    def _deferred_due(self) -> None:
        self._deferred = None
        if self._flushed_generation < self._generation:
            self._start_background_flush()

    async def record(self, seq: int, kind: str, label: str, payload: Any) -> None:
        """Buffer an event and wait until it is durably written."""
        self.buffer(seq, kind, label, payload)
        await self.flush()

    async def flush(self) -> None:
        """Write everything buffered so far (one round trip, shared by concurrent callers)."""
        self._raise_background_error()
        target = self._generation
        if self._flushed_generation >= target:
            return
        with self._activity():
            async with self._lock:
                if self._flushed_generation >= target:
                    return
                writes, generation = self._take()
                await self.journal.write(writes)
                self._flushed_generation = generation

    async def drain(self) -> Writes:
        """Take what is still buffered, after any write in flight (for the final write)."""
        async with self._lock:
            self._raise_background_error()
            writes, generation = self._take()
            self._flushed_generation = generation
            return writes

    def _take(self) -> tuple[Writes, int]:
        writes = Writes(
            events=sorted(self._events.values(), key=lambda e: e.seq), lines=self._lines
        )
        self._events = {}
        self._lines = []
        return writes, self._generation

    def _raise_background_error(self) -> None:
        if self._background_error is not None:
            raise self._background_error

    # -- the task's log ----------------------------------------------------------------

    def log_line(self, line: str) -> None:
        """Append a line to the task's log; a line an earlier run wrote is not written again.

        Lines are counted, not numbered by seq: a print is not an effect the replay has to
        match, so code that prints a little differently never fails as non-deterministic.
        Workflow code runs in the same order on every replay, so the count is stable.
        """
        index = self.next_line
        self.next_line += 1
        if index < self._recorded_lines:
            return
        self._lines.append((self.log_base + index, line))
        self._generation += 1
        self._start_background_flush()

    def lines_written(self) -> int:
        """The task's log length once this run's lines are written (the next log_base)."""
        return self.log_base + self.next_line

    # -- background writes -------------------------------------------------------------

    def _start_background_flush(self) -> None:
        if self._background is None or self._background.done():
            self._background = self._real_loop().create_task(self._flush_in_background())

    async def _flush_in_background(self) -> None:
        try:
            await self.flush()
        except LeaseLost as error:
            self._background_error = error
            self._on_lost(error)
        except Exception as error:
            self._background_error = error

    async def close(self) -> None:
        """Wait for a background write in flight (errors surface through drain)."""
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        if self._background is not None:
            await asyncio.gather(self._background, return_exceptions=True)


def _ignore(_error: BaseException) -> None:
    return None
