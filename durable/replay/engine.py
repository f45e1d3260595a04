"""The engine: one run of one workflow, handed its effects' outcomes one at a time.

The workflow's coroutines run on their own loop (loop.py), never on the worker's. Each effect
gets its ``seq`` when the workflow *issues* it, and its outcome reaches the workflow as a
*delivery*: the engine sets the effect's future, then runs the workflow until every coroutine
waits again (quiescence), and only then makes the next delivery. Deliveries are numbered; the
number is recorded with the outcome (history.py, ``"delivered"``).

- On new ground (past the recorded history), outcomes are delivered in the order they arrive:
  a step that finishes, a timer that fires, a cancellation. Effects are performed by
  *performers*, coroutines on the worker's loop (effects.py), which hand their outcome back.
- A replay delivers recorded outcomes in their recorded order (script.py), each once the
  workflow has issued that effect again and is quiescent. Whatever order steps happened to
  finish in, the workflow resumes its coroutines in that same order, so it issues the same
  effects at the same seqs and takes the same branches (SPEC 7.8). An effect issued during the
  replay whose outcome was not delivered by the earlier run is performed once the replay has
  made every recorded delivery. If the script's next outcome belongs to an effect the
  quiescent workflow did not issue, the code changed: NonDeterminismError.

Cancellation is one of the deliveries: it lands where the workflow waits (``durable.Cancelled``
raised at its awaits), and a marker event records where, so a replay lands it at the same point.

A run ends when the workflow returns or raises, when it only waits on timers, promises,
notifications or children (it is *suspended*: the worker writes that and forgets it), when the
worker releases it, or when the lease is lost. `Engine.run` returns how it ended; the engine
never calls its owner.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from durable import serialization
from durable.errors import Cancelled, NonDeterminismError
from durable.replay import history
from durable.replay.control import LeaseLost
from durable.replay.guard import GuardedWorkflowLoop
from durable.replay.history import CANCEL, Recorded
from durable.replay.journal import Journal
from durable.replay.loop import DurableTimerHandle, WorkflowLoop
from durable.replay.recorder import Recorder
from durable.replay.run import (
    CANCEL_MESSAGE,
    STOP_MESSAGE,
    Arrival,
    Condition,
    Effect,
    Host,
    RunEnd,
    RunSpec,
    Suspension,
    current_engine,
    in_cleanup,
    utcnow,
)
from durable.replay.script import Cut, Delivery, Script

__all__ = [
    "CANCEL_MESSAGE",
    "Arrival",
    "Condition",
    "Effect",
    "Engine",
    "Host",
    "RunEnd",
    "RunSpec",
    "Suspension",
    "current_engine",
    "in_cleanup",
    "utcnow",
]

_CANCEL = object()  # the cancellation, queued among the arrivals


class Cancellation:
    """The task's cancellation as this run knows it: requested (by `durable cancel`, a
    timeout, a recorded marker), then delivered to the workflow once, at one point."""

    __slots__ = ("delivered", "requested")

    def __init__(self, requested: bool) -> None:
        self.requested = requested
        self.delivered = False

    def pending(self) -> bool:
        """Requested, not delivered yet."""
        return self.requested and not self.delivered

    def refuse(self, task_id: int) -> None:
        """Raise durable.Cancelled for an effect issued after the delivery, outside cleanup."""
        if self.delivered and not in_cleanup.get():
            raise Cancelled(f"task {task_id} was cancelled")


class Engine(Recorder):
    """Runs one workflow run: its deliveries, in replay order, then as outcomes arrive."""

    def __init__(self, spec: RunSpec, journal: Journal, host: Host) -> None:
        super().__init__(spec, journal, host)
        self._script = Script(spec.history)
        self._position = self._script.next_position
        # asyncio marks the I/O methods abstract; the workflow loop refuses them (loop.py).
        loop_class = GuardedWorkflowLoop if spec.strict else WorkflowLoop
        self._wloop = loop_class(self)  # type: ignore[abstract]
        self._pending: dict[int, Effect] = {}
        self._ready: collections.deque[tuple[Effect | object, Arrival | BaseException]] = (
            collections.deque()
        )
        self._to_start: list[Effect] = []
        self._new_ground = False
        self._settling = False
        self._settle_scheduled = False
        self._result: RunEnd | None = None
        self._ended = False
        self._lost: BaseException | None = None
        self._done: asyncio.Future[RunEnd] | None = None
        self._root: asyncio.Task[Any] | None = None
        self._step_context = contextvars.copy_context()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.cancellation = Cancellation(spec.cancel_requested)

    def is_replaying(self) -> bool:
        """True while recorded outcomes remain to be handed back."""
        return not self._new_ground

    @property
    def cancel_requested(self) -> bool:
        """The task is being cancelled (the run ends ``cancelled``)."""
        return self.cancellation.requested

    # -- effects, seen from the workflow -----------------------------------------------------

    async def effect(
        self,
        seq: int,
        kind: str,
        label: str,
        recorded: Recorded | None,
        perform: Callable[[Effect], Awaitable[Arrival]],
    ) -> Any:
        """Issue an effect and wait for its outcome's delivery; the payload it was given."""
        self._refuse_after_cancellation()
        effect = Effect(seq, kind, label, recorded, perform)
        # A plain future: workflow code never sees it (only this coroutine awaits it).
        future: asyncio.Future[Any] = asyncio.Future(loop=self._wloop)
        effect.future = future
        self._register(effect)
        try:
            return await future
        except asyncio.CancelledError as error:
            # The workflow stopped waiting (a cancellation, a timeout, a lost race): the
            # effect is abandoned, its performer stopped, nothing recorded for it.
            self._forget(effect)
            self._drop_arrival(effect)
            if error.args and error.args[0] == CANCEL_MESSAGE and not in_cleanup.get():
                raise Cancelled(f"task {self.task_id} was cancelled") from None
            raise

    def _refuse_after_cancellation(self) -> None:
        if self._ended:
            raise asyncio.CancelledError(STOP_MESSAGE)
        self.cancellation.refuse(self.task_id)

    def _register(self, effect: Effect) -> None:
        self._pending[effect.seq] = effect
        if not self._new_ground:
            return  # the script delivers it, or it waits for new ground
        if effect.recorded_outcome():
            self._ready.append((effect, (self._recorded_payload(effect), None)))
        else:
            self._to_start.append(effect)

    def _forget(self, effect: Effect) -> None:
        """The workflow no longer waits for this effect (delivered, or cancelled)."""
        if self._pending.get(effect.seq) is effect:
            del self._pending[effect.seq]
        if effect.task is not None and not effect.task.done():
            effect.task.cancel()

    # -- timers of asyncio itself (loop.TimerHost) -------------------------------------------

    def start_timer(self, handle: DurableTimerHandle) -> None:
        """A timer set by workflow code through asyncio: recorded, fired by delivery."""
        if self._ended:
            return  # unwinding: it never fires
        seq = self.next_seq()
        recorded = self.match(seq, history.TIMER, history.ASYNCIO_TIMER)
        if recorded is not None:
            until = str(recorded.payload["until"])
        else:
            delay = max(handle.when() - self._wloop.time(), 0.0)
            until = (self.clock() + timedelta(seconds=delay)).isoformat()
            self.buffer_soon(seq, history.TIMER, history.ASYNCIO_TIMER, {"until": until})

        async def fire(effect: Effect) -> Arrival:
            await self.wait_until(effect, datetime.fromisoformat(until))
            return {"until": until}, None

        effect = Effect(seq, history.TIMER, history.ASYNCIO_TIMER, recorded, fire)
        effect.timer = handle
        handle.token = effect
        self._register(effect)

    def cancel_timer(self, handle: DurableTimerHandle) -> None:
        """The timer was cancelled before it fired: it never will."""
        effect = handle.token
        if isinstance(effect, Effect):
            self._forget(effect)
            self._drop_arrival(effect)

    def _drop_arrival(self, effect: Effect) -> None:
        for item in list(self._ready):
            if item[0] is effect:
                self._ready.remove(item)

    # -- running -------------------------------------------------------------------------------

    async def run(
        self,
        coroutine: Any,
        context: contextvars.Context,
        step_context: contextvars.Context | None = None,
    ) -> RunEnd:
        """Run the workflow until it ends, suspends, is released or loses its lease.

        ``context`` is the workflow's (``current_engine`` set to this engine);
        ``step_context`` the one its effects are performed in (default: a copy of it
        without the engine).
        """
        self._loop = asyncio.get_running_loop()
        self._buffer.loop = self._loop
        self._done = self._loop.create_future()
        self._step_context = step_context if step_context is not None else context.copy()
        self._step_context.run(current_engine.set, None)
        self._root = self._wloop.create_task(coroutine, context=context)
        self._root.add_done_callback(self._root_done)
        self._settle()
        end = await asyncio.shield(self._done)
        if self._lost is not None:
            raise self._lost
        return end

    def request_cancel(self) -> None:
        """Cancel the task: delivered where the workflow waits, once the replay is done."""
        if self.cancellation.requested:
            return
        self.cancellation.requested = True
        if self._new_ground:
            self._ready.append((_CANCEL, (None, None)))
            self._settle_soon()

    def release(self) -> None:
        """Stop without writing anything (the task goes back to pending)."""
        self._end(RunEnd(released=True))

    def _lease_lost(self, error: BaseException) -> None:
        self._lost = self._lost or error
        self._end(RunEnd(released=True))

    def _root_done(self, root: asyncio.Task[Any]) -> None:
        if root.cancelled():
            self._result = RunEnd(error=asyncio.CancelledError())
        elif root.exception() is not None:
            self._result = RunEnd(error=root.exception())
        else:
            self._result = RunEnd(value=root.result())

    def _settle_soon(self) -> None:
        if self._settle_scheduled or self._ended or self._loop is None:
            return
        self._settle_scheduled = True
        self._loop.call_soon(self._settle_scheduled_run)

    def _settle_scheduled_run(self) -> None:
        self._settle_scheduled = False
        self._settle()

    def _settle(self) -> None:
        """Run the workflow to quiescence, deliver the next outcome, again, while there is one."""
        if self._settling or self._ended:
            return
        self._settling = True
        try:
            while not self._ended:
                self._wloop.run_ready()
                if self._result is not None:
                    self._end(self._result)
                    return
                if not self._deliver_next():
                    break
            if self._ended:
                return
            self._start_performers()
            self._consider_suspending()
        except BaseException as error:  # SystemExit and the like from workflow code
            self._end(RunEnd(error=error))
        finally:
            self._settling = False

    def _deliver_next(self) -> bool:
        """Make the next delivery, if one is due; False when the workflow must wait."""
        if not self._new_ground:
            return self._replay_next()
        if self._ready:
            target, arrival = self._ready.popleft()
            if target is _CANCEL:
                self._land_cancellation(None)
            elif isinstance(target, Effect):
                self._deliver(target, arrival, None)
            return True
        return self._unordered_cancel()

    def _replay_next(self) -> bool:
        entry = self._script.peek()
        if entry is None:
            self._enter_new_ground()
            return True
        self._script.advance()
        if isinstance(entry, Cut):
            # `durable retry` set the rest of that branch aside: number past its records.
            self._next_seq = max(self._next_seq, entry.resume_seq)
            self._buffer.next_line = max(self._buffer.next_line, entry.resume_line)
            return True
        assert isinstance(entry, Delivery)
        event = self._recorded[entry.seq]
        if event.kind == CANCEL:
            self._land_cancellation(event)
            return True
        effect = self._pending.get(entry.seq)
        if effect is None or not effect.recorded_outcome():
            self._diverged(event, entry)
            return False
        self._deliver(effect, (event.payload, None), entry.position)
        return True

    def _diverged(self, event: Recorded, entry: Delivery) -> None:
        waits = ", ".join(f"{e.kind} {e.label!r} (seq {e.seq})" for e in self._pending.values())
        error = NonDeterminismError(
            event.seq,
            f"{event.kind} {event.label!r} handed back as outcome #{entry.position}",
            f"nothing of the kind: the workflow waits for {waits or 'nothing'}"
            if event.seq < self._next_seq
            else f"nothing yet: the workflow has issued seqs up to {self._next_seq - 1} only",
        )
        self.nondeterminism = self.nondeterminism or error
        self._result = RunEnd(error=error)
        self._end(self._result)

    def _enter_new_ground(self) -> None:
        """Every recorded delivery is made: from now on, outcomes are delivered as they come."""
        if self.spec.replay_only:
            self._stop_replay()
            return
        self._new_ground = True
        for seq in sorted(self._pending):
            effect = self._pending[seq]
            if effect.recorded_outcome():
                # Recorded, but the earlier run had not handed it over (or did not record
                # the order): it is the first thing that happens now.
                self._ready.append((effect, (self._recorded_payload(effect), None)))
            else:
                self._to_start.append(effect)
        if self.cancellation.pending():
            self._ready.append((_CANCEL, (None, None)))

    def _stop_replay(self) -> None:
        """A replay-only run ends where the history does. The quiescent workflow has issued
        everything the recorded run had issued by then (effects are issued only between
        deliveries): a recorded effect past its last seq is one the code no longer asks for."""
        leftover = [
            event
            for seq, event in self._recorded.items()
            if seq >= self._next_seq and event.kind not in (CANCEL, history.RETRY)
        ]
        if leftover:
            first = min(leftover, key=lambda event: event.seq)
            self.nondeterminism = self.nondeterminism or NonDeterminismError(
                first.seq,
                f"{first.kind} {first.label!r}",
                f"nothing: the workflow waits with seqs up to {self._next_seq - 1} issued",
            )
        self._end(RunEnd(replayed=True))

    def _recorded_payload(self, effect: Effect) -> Any:
        assert effect.recorded is not None
        payload = dict(effect.recorded.payload)
        payload.pop(history.DELIVERED, None)
        return payload

    def _deliver(
        self, effect: Effect, arrival: Arrival | BaseException, position: int | None
    ) -> None:
        """Hand an outcome to the workflow (recording its position when it is new)."""
        effect.task = None  # its performer is done (it is the one handing this over)
        self._forget(effect)
        if isinstance(arrival, BaseException):  # a performer's own failure: not recorded
            if effect.future is not None and not effect.future.done():
                effect.future.set_exception(arrival)
            return
        payload, value_text = arrival
        if position is None:
            position = self._position
            self._position += 1
            cause = None
            if isinstance(payload, dict):
                printed = payload.pop(history.PRINTED_LINES, None)
                if printed:
                    for line in printed:
                        self._buffer.log_line(serialization.storable_text(line))
                    payload[history.PRINTED] = len(printed)
                cause = payload.pop(history.CAUSE, None)
            self._record_delivery(effect, payload, value_text, position)
            if cause is not None:
                # The exception the step's code raised, for this run's traceback only.
                payload = {**payload, history.CAUSE: cause}
        elif isinstance(payload, dict) and payload.get(history.PRINTED):
            # Lines the step printed were written when this was first delivered: count them.
            self._buffer.next_line += int(payload[history.PRINTED])
        if effect.timer is not None:
            self._wloop.fire(effect.timer)
        elif effect.future is not None and not effect.future.done():
            effect.future.set_result(payload)

    def _record_delivery(
        self, effect: Effect, payload: Any, value_text: str | None, position: int
    ) -> None:
        previous = effect.recorded.payload if effect.recorded is not None else None
        if previous is not None and effect.recorded is not None and effect.recorded.retried:
            # The outcome `durable retry` set aside stays in the history, inside this one.
            payload = {**payload, "previous": previous}
            value_text = None
        if value_text is not None:
            text = history.step_ok_text(
                value_text, int(payload["attempts"]), position, int(payload.get(history.PRINTED, 0))
            )
        else:
            text = history.dumps(history.with_delivery(payload, position))
        self._buffer.buffer_soon(effect.seq, effect.kind, effect.label, text)

    def _land_cancellation(self, marker: Recorded | None) -> None:
        """The cancellation lands here: durable.Cancelled where the workflow waits.

        On new ground a marker is recorded at the next seq, with its delivery position, so
        that a replay (after a crash during the cleanup) lands it at this same point.
        """
        if self.cancellation.delivered:
            return
        if marker is None:
            seq = self.next_seq()
            position = self._position
            self._position += 1
            self.buffer_soon(seq, CANCEL, CANCEL, {history.DELIVERED: position})
        else:
            if marker.seq != self._next_seq:
                self._nondeterministic_stop(marker)
                return
            self._next_seq += 1
        self.cancellation.requested = True
        self.cancellation.delivered = True
        if self._root is not None and not self._root.done():
            self._root.cancel(CANCEL_MESSAGE)

    def _nondeterministic_stop(self, marker: Recorded) -> None:
        error = NonDeterminismError(
            marker.seq, "the cancellation", f"an effect at seq {self._next_seq - 1} first"
        )
        self.nondeterminism = self.nondeterminism or error
        self._result = RunEnd(error=error)
        self._end(self._result)

    def _unordered_cancel(self) -> bool:
        """A cancellation marker of a history without delivery order: it lands where the
        replay reaches its seq (as the version that wrote it did); a retried one is skipped."""
        marks = self._script.unordered_cancels
        if not marks or marks[0].seq != self._next_seq:
            return False
        marker = marks.pop(0)
        payload = marker.payload or {}
        if payload.get("retried"):
            self._next_seq = max(self._next_seq + 1, int(payload.get("resume_seq", 0)))
            self._buffer.next_line = max(self._buffer.next_line, int(payload.get("resume_line", 0)))
            return True
        self._land_cancellation(marker)
        return True

    def _start_performers(self) -> None:
        starting, self._to_start = self._to_start, []
        assert self._loop is not None
        for effect in starting:
            if self._pending.get(effect.seq) is effect and effect.task is None:
                effect.task = self._loop.create_task(
                    self._perform(effect), context=self._step_context
                )

    async def _perform(self, effect: Effect) -> None:
        try:
            arrival: Arrival | BaseException = await effect.perform(effect)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                return  # the workflow stopped waiting for it, or the run ended
            raise
        except LeaseLost as error:
            self._lease_lost(error)
            return
        except Exception as error:
            arrival = error
        if self._ended or self._pending.get(effect.seq) is not effect:
            return
        self._ready.append((effect, arrival))
        self._settle()

    def _consider_suspending(self) -> None:
        """Suspend a run that only waits: on timers far enough away, or on wake-ups."""
        if (
            not self.spec.may_suspend
            or not self._new_ground
            or self._ended
            or self.cancellation.requested  # cleanup code runs in memory to its end
            or self._ready
            or self._active
            or not self._wloop.quiescent
        ):
            return
        if not self._waiting or self._waiting != len(self._pending):
            return
        live = list(self._pending.values())
        if not all(e.waiting for e in live):
            return
        deadlines = [e.deadline for e in live if e.deadline is not None]
        wake_at = min(deadlines, default=None)
        if self.spec.deadline is not None and (wake_at is None or self.spec.deadline < wake_at):
            wake_at = self.spec.deadline  # resumed at its timeout, to be cancelled
        condition = Condition(
            tuple(sorted({p for e in live for p in e.condition.promises})),
            any(e.condition.notification for e in live),
            tuple(sorted({c for e in live for c in e.condition.children})),
        )
        left = None if wake_at is None else (wake_at - self.clock()).total_seconds()
        if (condition and (left is None or left > self.spec.timer_lead)) or (
            left is not None and left > self.spec.suspend_after
        ):
            self._end(RunEnd(suspension=Suspension(wake_at, condition)))

    def waits_only_on_timers(self) -> datetime | None:
        """The earliest deadline, if the run only waits on timers now (on new ground, nothing
        running, nothing to deliver, no promise, notification or child awaited); else None.
        A test's virtual clock may then jump to it."""
        if (
            self._ended
            or not self._new_ground
            or self._ready
            or self._active
            or self._to_start
            or not self._wloop.quiescent
        ):
            return None
        live = list(self._pending.values())
        if not live or self._waiting != len(live):
            return None
        deadlines = [e.deadline for e in live if e.waiting and not e.condition]
        if len(deadlines) != len(live) or None in deadlines:
            return None
        return min(d for d in deadlines if d is not None)

    def _end(self, end: RunEnd) -> None:
        """Stop the run: no more deliveries, performers cancelled, workflow code unwound."""
        if self._ended:
            return
        self._ended = True
        for effect in list(self._pending.values()):
            if effect.task is not None and not effect.task.done():
                effect.task.cancel()
        self._unwind()
        if self._done is not None and not self._done.done():
            self._done.set_result(end)

    def dispose(self) -> None:
        """Drop the references that tie the run's objects in cycles, once the runner is done
        with it (its final write taken): they are then freed at once, not by the garbage
        collector, whose passes over thousands of finished runs cost more than the runs."""
        self._wloop.detach()
        self._root = None
        self._pending.clear()
        self._ready.clear()
        self._to_start.clear()
        self._step_context = contextvars.Context()
        self._detach_recorder()

    def _unwind(self) -> None:
        """Cancel what is left of the workflow's coroutines and let their finally blocks run.

        Effects they issue now are refused, and lines they print are not written: a run that
        is suspended or handed over runs again from the top later.
        """
        self._unwinding = True
        try:
            for _ in range(10):
                left = self._wloop.unfinished_tasks()
                if not left:
                    break
                for task in left:
                    task.cancel(STOP_MESSAGE)
                with contextlib.suppress(BaseException):
                    self._wloop.run_ready()
        finally:
            self._unwinding = False
            self._wloop.close()
