"""The recording half of the engine: numbering, matching, buffered writes, waits.

`Engine` (engine.py) adds the scheduling half: deliveries, replay order, cancellation,
suspension. This half knows nothing of the workflow loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from durable import serialization
from durable.errors import NonDeterminismError
from durable.replay import history
from durable.replay.buffer import WriteBuffer
from durable.replay.history import CANCEL, Recorded
from durable.replay.journal import Journal, Writes
from durable.replay.run import Condition, Effect, Host, RunSpec
from durable.retry import NO_RETRY


class Recorder:
    """One run's numbering, matching, writes and waits."""

    def __init__(self, spec: RunSpec, journal: Journal, host: Host) -> None:
        self.spec = spec
        self.journal = journal
        self.host = host
        self.task_id = spec.task_id
        self.name = spec.name
        self.workflow = spec.workflow
        # The ContinueAsNew generation of the task this run belongs to.
        self.generation = spec.run
        self.default_retry = spec.default_retry or NO_RETRY
        self.finished_children = dict(spec.finished_children)
        self._recorded = {event.seq: event for event in spec.history}
        self._next_seq = 0
        self._active = 0
        self._activity = _Activity(self)
        # Performers inside a wait (engine.py suspends a run whose performers all wait).
        self._waiting = 0
        self.quiet = asyncio.Event()
        self.quiet.set()
        self._buffer = WriteBuffer(
            journal,
            activity=self.activity,
            log_lines=spec.log_lines,
            log_base=spec.log_base,
            on_lost=self._lease_lost,
        )
        self._launches: list[tuple[int, str, dict[str, Any], asyncio.Future[Any]]] = []
        self._launch_sender: asyncio.Task[None] | None = None
        self._unwinding = False
        self.nondeterminism: NonDeterminismError | None = None
        # Set when the worker stops: no new step starts; effects in flight may finish.
        self.draining = False

    def _detach_recorder(self) -> None:
        """Break the recorder's own cycles (see Engine.dispose)."""
        self._buffer.detach()
        self._activity = _Activity(None)

    def _lease_lost(self, error: BaseException) -> None:
        """A write found the task held by another worker (the engine ends the run)."""
        raise NotImplementedError

    def _settle_soon(self) -> None:
        """Something a waiting run depends on changed (the engine looks again)."""
        raise NotImplementedError

    # -- identity and the clock ----------------------------------------------------------

    def clock(self) -> datetime:
        """The wall clock, UTC-aware."""
        return self.host.now()

    # -- numbering and matching ----------------------------------------------------------

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
            self._nondeterministic(
                NonDeterminismError(seq, f"{recorded.kind} {recorded.label!r}", f"{kind} {label!r}")
            )
        return recorded

    def _nondeterministic(self, error: NonDeterminismError) -> None:
        # Kept even if the workflow catches it: the run must not complete on a history it
        # does not follow.
        self.nondeterminism = self.nondeterminism or error
        raise error

    def patched(self, change_id: str) -> bool:
        """True for runs that reach this point for the first time (the patch is recorded);
        False when replaying history recorded before the patch existed (nothing consumed)."""
        seq = self._next_seq
        recorded = self._recorded.get(seq)
        if recorded is not None and (recorded.kind, recorded.label) != (history.PATCH, change_id):
            return False  # history from before the patch: the old code path, no seq used
        self._next_seq += 1
        if recorded is None:
            self._buffer.buffer(seq, history.PATCH, change_id, True)
        return True

    def sync_effect(self, kind: str, label: str, compute: Callable[[], Any]) -> Any:
        """A value handed out synchronously: recorded on first run, returned on replay."""
        seq = self.next_seq()
        recorded = self.match(seq, kind, label)
        if recorded is not None:
            return recorded.payload
        value = compute()
        self._buffer.buffer(seq, kind, label, value)
        return value

    def check_history_consumed(self) -> None:
        """At completion: a recorded effect the code never asked for is non-determinism."""
        leftover = [
            event
            for seq, event in self._recorded.items()
            if seq >= self._next_seq and event.kind not in (CANCEL, history.RETRY)
        ]
        if leftover:
            first = min(leftover, key=lambda event: event.seq)
            error = NonDeterminismError(
                first.seq, f"{first.kind} {first.label!r}", "nothing (the workflow returned)"
            )
            self.nondeterminism = self.nondeterminism or error

    # -- writes (buffer.py) ----------------------------------------------------------------

    def buffer(self, seq: int, kind: str, label: str, payload: Any) -> None:
        """Queue an event for the next write."""
        self._buffer.buffer(seq, kind, label, payload)

    def buffer_soon(self, seq: int, kind: str, label: str, payload: Any) -> None:
        """Queue an event; a background write carries it if no other write comes soon."""
        self._buffer.buffer_soon(seq, kind, label, history.dumps(payload))

    async def record(self, seq: int, kind: str, label: str, payload: Any) -> None:
        """Buffer an event and wait until it is durably written."""
        await self._buffer.record(seq, kind, label, payload)

    def flush(self) -> Awaitable[None]:
        """Write everything buffered so far (the buffer's own coroutine: once per step)."""
        return self._buffer.flush()

    async def drain(self) -> Writes:
        """What is still buffered, for the final write."""
        return await self._buffer.drain()

    async def close(self) -> None:
        """Wait for a background write in flight."""
        await self._buffer.close()

    def log_line(self, line: str) -> None:
        """Append a line to the task's log (once, never again on replay)."""
        if not self._unwinding:
            # A line is stored whatever it holds: a NUL or a lone surrogate is escaped.
            self._buffer.log_line(serialization.storable_text(line))

    def lines_written(self) -> int:
        """The task's log length once this run's lines are written."""
        return self._buffer.lines_written()

    # -- activity (what keeps a run from being suspended or handed over) -------------------

    def activity(self) -> _Activity:
        """Mark work in flight (a step running, a write under way): ``with``."""
        return self._activity

    def _activity_started(self) -> None:
        self._active += 1
        self.quiet.clear()

    def _activity_ended(self) -> None:
        self._active -= 1
        if self._active == 0:
            self.quiet.set()
            if self._waiting:
                self._settle_soon()  # a run that only waits may be suspended now

    @property
    def active(self) -> int:
        """Work in flight now."""
        return self._active

    async def wait_until(self, effect: Effect, deadline: datetime) -> None:
        """A performer waits for ``deadline``; meanwhile the run may be suspended."""
        await self.wait_for(effect, Condition(), deadline)

    async def wait_for(
        self, effect: Effect, condition: Condition, deadline: datetime | None
    ) -> None:
        """A performer waits for something only a suspension and a wake-up can deliver (a
        promise completed elsewhere, a notification, a child ending), or for ``deadline``.

        A running task is not told when a promise completes or a notification arrives: once
        the run only waits, it is suspended, the completion wakes it, and the performer of the
        next run finds what it waited for. Returns when ``deadline`` passes.
        """
        remaining = None if deadline is None else (deadline - self.clock()).total_seconds()
        if remaining is not None and remaining <= 0:
            return
        effect.waiting = True
        effect.deadline = deadline
        effect.condition = condition
        self._waiting += 1
        try:
            self._settle_soon()
            if remaining is None:
                await asyncio.get_running_loop().create_future()
            else:
                await self.host.sleep(remaining, interruptible=bool(condition))
        finally:
            self._waiting -= 1
            effect.waiting = False
            effect.deadline = None
            effect.condition = Condition()

    async def admit_step(self) -> None:
        """Before a step's code runs: nothing new starts while the worker drains, or while it
        cannot be sure it still holds its tasks."""
        if self.draining:
            await asyncio.get_running_loop().create_future()  # until the run is released
        await self.host.admit_step()

    # -- children ----------------------------------------------------------------------------

    def launch_child(self, seq: int, label: str, spec: dict[str, Any]) -> asyncio.Future[Any]:
        """Queue a child launch; launches issued together share one transaction.

        A fan-out (``asyncio.gather(*(ctx.start(...) for ...))``) issues all its launches in
        one burst; their performers start together, and the sender runs after them and
        creates every child, and records every launch, in one round trip.
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


class _Activity:
    """The context manager of `Recorder.activity` (a plain class: it runs twice per step)."""

    __slots__ = ("_recorder",)

    def __init__(self, recorder: Recorder | None) -> None:
        self._recorder = recorder

    def __enter__(self) -> None:
        if self._recorder is not None:
            self._recorder._activity_started()

    def __exit__(self, *_exc: object) -> None:
        if self._recorder is not None:
            self._recorder._activity_ended()
