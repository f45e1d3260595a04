"""The engine: one run of one workflow against its journal.

Every effect gets its ``seq`` when the workflow *issues* it (at call time, before any await),
so concurrent effects are numbered in issue order whatever order they finish in. At a seq that
was recorded by an earlier run, the effect must ask for the same kind and label
(else NonDeterminismError) and gets the recorded outcome back; past the recorded history, the
effect is performed and its outcome buffered, then written in one round trip.

Writes are batched: values handed out synchronously (``now``, ``random``, ``uuid4``) and printed
lines wait in a buffer; the next effect's write, or a background flush for lines, carries them.
Before a step runs, the buffer is flushed, so nothing a step may depend on is unrecorded.

A step's successful outcome waits in the buffer too (`buffer_soon`): the code after it is
the workflow's own, which has no effect outside the process until its next effect, and every
effect that reaches outside (a step's code, a transaction, a child, a promise, a timer) flushes
first; the final write carries it when the workflow returns. So "a step, then return" costs one
commit, not two. A crash before that write runs the step again, as a crash right after the
step's code always could (SPEC 7.1: at-least-once until recorded). If no write comes within
`DEFERRED_FLUSH_DELAY`, a background flush records it anyway, so a workflow that computes for a
while after a step does not leave its outcome unrecorded meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from durable import serialization
from durable.errors import NonDeterminismError
from durable.replay.control import LeaseLost
from durable.replay.journal import Journal, NewEvent, Recorded, Writes
from durable.retry import NO_RETRY, RetryPolicy

# The kind and label of the event that marks where a cancellation landed.
CANCEL = "cancel"

# How long a buffered step outcome may wait for the next write to carry it (seconds).
DEFERRED_FLUSH_DELAY = 0.02


@dataclass(frozen=True)
class Condition:
    """What a waiting run needs: a completed promise among ``promises``, or a notification."""

    promises: tuple[str, ...] = ()
    notification: bool = False
    children: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.promises or self.notification or self.children)


def utcnow() -> datetime:
    """The wall clock, UTC-aware."""
    return datetime.now(UTC)


class Engine:
    """Runs effects for one workflow run: numbering, matching, buffering, flushing."""

    def __init__(
        self,
        journal: Journal,
        history: list[Recorded],
        log_lines: int,
        *,
        task_id: int,
        name: str,
        workflow: str,
        default_retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        finished_children: dict[int, tuple[str, Any, Any]] | None = None,
        run: int = 0,
        log_base: int = 0,
    ) -> None:
        self.journal = journal
        # ContinueAsNew generation, and the number of log lines earlier generations wrote.
        self.run = run
        self.log_base = log_base
        # Outcomes of children that had ended when this run started (read with the history).
        self.finished_children = dict(finished_children or {})
        self._launches: list[tuple[int, str, dict[str, Any], asyncio.Future[Any]]] = []
        self._launch_sender: asyncio.Task[None] | None = None
        self.task_id = task_id
        self.name = name
        self.workflow = workflow
        self.default_retry = default_retry or NO_RETRY
        self.clock = clock
        self._recorded = {event.seq: event for event in history}
        self._last_recorded_seq = max(self._recorded, default=-1)
        # Where earlier runs were cancelled (see land_cancellation): few, usually none.
        self._cancel_marks = sorted(s for s, e in self._recorded.items() if e.kind == CANCEL)
        self._next_seq = 0
        self._recorded_lines = log_lines
        self._next_line = 0
        self._pending_events: dict[int, NewEvent] = {}
        self._pending_lines: list[tuple[int, str]] = []
        self._generation = 0
        self._flushed_generation = 0
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._deferred_flush: asyncio.TimerHandle | None = None
        self._background_error: BaseException | None = None
        self.nondeterminism: NonDeterminismError | None = None
        self.cancel_requested = False
        self.cancel_delivered = False
        # Quiescence: effects in flight vs. timers being waited on. A run with nothing in
        # flight and only long timers pending can be suspended (its owner decides).
        self._active = 0
        self._activity = _Activity(self)
        self._timers: dict[object, datetime] = {}
        # What the run waits for besides time: promise ids, or its notification mailbox.
        self._conditions: dict[object, Condition] = {}
        self.quiet = asyncio.Event()
        self.quiet.set()
        self.on_idle: Callable[[], None] | None = None
        # Set when the worker stops: no new step starts; effects in flight may finish.
        self.draining = False
        # Returns once this worker is known to still hold its tasks (a recent heartbeat):
        # a worker frozen past its lease must not start a step another worker may have run.
        self.lease_guard: Callable[[], Awaitable[None]] | None = None
        # The workflow's timeout as an instant: the run is cancelled then.
        self.deadline: datetime | None = None

    # -- numbering and matching --------------------------------------------------------------

    def next_seq(self) -> int:
        """The seq of the effect being issued now."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def match(self, seq: int, kind: str, label: str) -> Recorded | None:
        """The recorded event at ``seq`` if any; NonDeterminismError if it is another effect."""
        recorded = self._recorded.get(seq)
        if recorded is None:
            return None
        if recorded.kind != kind or recorded.label != label:
            error = NonDeterminismError(
                seq, f"{recorded.kind} {recorded.label!r}", f"{kind} {label!r}"
            )
            # Kept even if the workflow catches it: the run must not complete on a history
            # it does not follow.
            self.nondeterminism = self.nondeterminism or error
            raise error
        return recorded

    def is_replaying(self) -> bool:
        """True while the workflow has not yet issued past its recorded history."""
        return self._next_seq <= self._last_recorded_seq

    # -- cancellation in the history --------------------------------------------------------

    def recorded_cancellation(self) -> Recorded | None:
        """The cancellation marker the replay has reached, if it has reached one.

        Reached: every recorded event before the marker has been issued again (seqs in
        between that were never recorded belong to effects that were in flight when the
        cancellation landed).
        """
        if not self._cancel_marks or self._next_seq > self._cancel_marks[-1]:
            return None
        for seq in range(self._next_seq, self._last_recorded_seq + 1):
            event = self._recorded.get(seq)
            if event is not None:
                return event if event.kind == CANCEL else None
        return None

    def land_cancellation(self) -> None:
        """The task's cancellation lands here, now: once per run.

        On new ground a marker is recorded at the next seq, so that a replay (after a crash
        during the cleanup) delivers the cancellation at this same point and the cleanup's
        effects match their records. A replay that has reached such a marker consumes it.
        """
        if self.cancel_delivered:
            return
        self.cancel_delivered = True
        marker = self.recorded_cancellation()
        if marker is not None and not (marker.payload or {}).get("retried"):
            self._next_seq = marker.seq + 1
            return
        seq = self.next_seq()
        self.buffer(seq, CANCEL, CANCEL, {})

    def skip_retried_cancellation(self) -> bool:
        """Past a cancellation that `durable retry` undid: resume as if it had not landed.

        Its cleanup's events and log lines stay recorded but belong to a branch this run does
        not take: seqs and line numbers go on after them. True if it skipped one.
        """
        marker = self.recorded_cancellation()
        if marker is None or not (marker.payload or {}).get("retried"):
            return False
        self._next_seq = max(self._next_seq, int(marker.payload["resume_seq"]))
        self._next_line = max(self._next_line, int(marker.payload["resume_line"]))
        return True

    def check_history_consumed(self) -> None:
        """At completion: a recorded effect the code never asked for is non-determinism."""
        if self._last_recorded_seq >= self._next_seq:
            leftover = self._recorded[min(s for s in self._recorded if s >= self._next_seq)]
            error = NonDeterminismError(
                leftover.seq,
                f"{leftover.kind} {leftover.label!r}",
                "nothing (the workflow returned)",
            )
            self.nondeterminism = self.nondeterminism or error

    def patched(self, change_id: str) -> bool:
        """True for runs that reach this point for the first time (the patch is recorded);
        False when replaying history recorded before the patch existed (nothing consumed)."""
        seq = self._next_seq
        recorded = self._recorded.get(seq)
        if recorded is not None and (recorded.kind, recorded.label) != ("patch", change_id):
            return False  # history from before the patch: the old code path, no seq used
        self._next_seq += 1
        if recorded is None:
            self.buffer(seq, "patch", change_id, True)
        return True

    # -- synchronous effects -----------------------------------------------------------------

    def sync_effect(self, kind: str, label: str, compute: Callable[[], Any]) -> Any:
        """A value handed out synchronously: recorded on first run, returned on replay."""
        seq = self.next_seq()
        recorded = self.match(seq, kind, label)
        if recorded is not None:
            return recorded.payload
        value = compute()
        self.buffer(seq, kind, label, value)
        return value

    # -- buffering and writing ---------------------------------------------------------------

    def buffer(self, seq: int, kind: str, label: str, payload: Any) -> None:
        """Queue an event for the next write (a later write at the same seq replaces it)."""
        self.buffer_text(seq, kind, label, serialization.dumps(payload, f"{kind} {label!r} record"))

    def buffer_text(self, seq: int, kind: str, label: str, text: str) -> None:
        """`buffer` with the payload already serialised to JSON text."""
        self._pending_events[seq] = NewEvent(seq, kind, label, text)
        self._generation += 1

    def buffer_soon(self, seq: int, kind: str, label: str, text: str) -> None:
        """Buffer an outcome (JSON text) the workflow may go on without; the next write
        carries it. If none does within DEFERRED_FLUSH_DELAY, a background flush does."""
        self.buffer_text(seq, kind, label, text)
        if self._deferred_flush is None:
            self._deferred_flush = asyncio.get_running_loop().call_later(
                DEFERRED_FLUSH_DELAY, self._deferred_flush_due
            )

    def _deferred_flush_due(self) -> None:
        self._deferred_flush = None
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
        with self.activity():
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
            events=sorted(self._pending_events.values(), key=lambda e: e.seq),
            lines=self._pending_lines,
        )
        self._pending_events = {}
        self._pending_lines = []
        return writes, self._generation

    def _raise_background_error(self) -> None:
        if self._background_error is not None:
            raise self._background_error

    # -- children ----------------------------------------------------------------------------

    def launch_child(self, seq: int, label: str, spec: dict[str, Any]) -> asyncio.Future[Any]:
        """Queue a child launch; launches issued together share one transaction.

        A fan-out (``asyncio.gather(*(ctx.start(...) for ...))``) issues all its launches in
        one turn of the event loop; the sender runs after them and creates every child, and
        records every launch, in one round trip.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._launches.append((seq, label, spec, future))
        if len(self._launches) == 1:
            self._launch_sender = loop.create_task(self._send_launches())
        return future

    async def _send_launches(self) -> None:
        launches, self._launches = self._launches, []
        try:
            payloads = await self.journal.launch_children(
                [(seq, label, spec) for seq, label, spec, _ in launches]
            )
        except BaseException as error:  # LeaseLost, a bug: every waiting launch learns it
            for *_, future in launches:
                if not future.done():
                    future.set_exception(error)
            return
        for seq, _, _, future in launches:
            if not future.done():
                future.set_result(payloads[seq])

    # -- the task's log ----------------------------------------------------------------------

    def log_line(self, line: str) -> None:
        """Append a line to the task's log; a line an earlier run wrote is not written again.

        Lines are counted, not numbered by seq: a print is not an effect the replay has to
        match, so code that prints a little differently never fails as non-deterministic.
        """
        index = self._next_line
        self._next_line += 1
        if index < self._recorded_lines:
            return
        self._pending_lines.append((self.log_base + index, line))
        self._generation += 1
        self._start_background_flush()

    def _start_background_flush(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.get_running_loop().create_task(self._flush_in_background())

    def lines_written(self) -> int:
        """The task's log length once this run's lines are written (the next log_base)."""
        return self.log_base + self._next_line

    async def _flush_in_background(self) -> None:
        try:
            await self.flush()
        except LeaseLost as error:
            self._background_error = error
        except Exception as error:
            self._background_error = error

    async def close(self) -> None:
        """Wait for a background write in flight (errors surface through drain)."""
        if self._deferred_flush is not None:
            self._deferred_flush.cancel()
            self._deferred_flush = None
        if self._background is not None:
            await asyncio.gather(self._background, return_exceptions=True)

    # -- quiescence ----------------------------------------------------------------------------

    def activity(self) -> _Activity:
        """Mark an effect in flight (a step running, a write under way): ``with``."""
        return self._activity

    def _activity_started(self) -> None:
        self._active += 1
        self.quiet.clear()

    def _activity_ended(self) -> None:
        self._active -= 1
        if self._active == 0:
            self.quiet.set()
            self._maybe_idle()

    @property
    def active(self) -> int:
        """Effects in flight now."""
        return self._active

    def earliest_timer(self) -> datetime | None:
        """The nearest deadline the run is waiting for, if it waits for any."""
        return min(self._timers.values(), default=None)

    def waiting_on(self) -> Condition:
        """Everything the run waits for besides timers (merged over concurrent waits)."""
        promises: set[str] = set()
        children: set[int] = set()
        notification = False
        for condition in self._conditions.values():
            promises.update(condition.promises)
            children.update(condition.children)
            notification = notification or condition.notification
        return Condition(tuple(sorted(promises)), notification, tuple(sorted(children)))

    def _maybe_idle(self) -> None:
        if self.on_idle is not None and self._active == 0 and (self._timers or self._conditions):
            self.on_idle()

    async def gate(self) -> None:
        """Called before a step's code runs: nothing new starts while the worker drains, or
        while it cannot be sure it still holds its tasks."""
        if self.draining:
            await asyncio.get_running_loop().create_future()  # until the run is released
        if self.lease_guard is not None:
            await self.lease_guard()

    # -- time --------------------------------------------------------------------------------

    async def wait_for(self, condition: Condition, deadline: datetime | None) -> None:
        """Wait for something only a suspension and a wake-up can deliver, or the deadline.

        A running task is not told when a promise completes or a notification arrives: once
        the run has nothing in flight its owner suspends it, the completion wakes it, and the
        replay finds what it waited for. Returns when ``deadline`` passes.
        """
        token = object()
        self._conditions[token] = condition
        if deadline is not None:
            self._timers[token] = deadline
        try:
            self._maybe_idle()
            if deadline is None:
                await asyncio.get_running_loop().create_future()
                return
            remaining = (deadline - self.clock()).total_seconds()
            if remaining > 0:
                await asyncio.sleep(remaining)
        finally:
            del self._conditions[token]
            self._timers.pop(token, None)

    async def wait_until(self, deadline: datetime) -> None:
        """Wait until ``deadline`` (already recorded by the caller).

        While it waits with nothing else in flight, the owner may suspend the run.
        """
        remaining = (deadline - self.clock()).total_seconds()
        if remaining <= 0:
            return
        token = object()
        self._timers[token] = deadline
        try:
            self._maybe_idle()
            await asyncio.sleep(remaining)
        finally:
            del self._timers[token]


class _Activity:
    """The context manager of `Engine.activity` (a plain class: it runs twice per step)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> None:
        self._engine._activity_started()

    def __exit__(self, *_exc: object) -> None:
        self._engine._activity_ended()
