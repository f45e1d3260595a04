"""One claimed task: load the workflow, replay it, record its effects, write how it ended."""

from __future__ import annotations

import asyncio
import contextvars
import json
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from durable import serialization
from durable.context import Context
from durable.errors import ContinueAsNew, SerializationError, WorkflowNotFound
from durable.models import TaskState
from durable.replay import capture, effects
from durable.replay.control import LeaseLost
from durable.replay.engine import Condition, Engine
from durable.replay.journal import Recorded, Writes
from durable.retry import RetryPolicy
from durable.store.store import ClaimedTask, Store
from durable.worker.journal import StoreJournal, persist, to_batch
from durable.worker.loader import Loader

log = structlog.get_logger("durable.worker")

# Why the worker cancels a workflow's asyncio task: only a durable cancellation becomes
# durable.Cancelled in the workflow; suspending or handing the run over just stops it.
SUSPEND_MESSAGE = "durable: suspending the run"
RELEASE_MESSAGE = "durable: handing the run over"


@dataclass
class Running:
    """A task this worker is running now."""

    claimed: ClaimedTask
    engine: Engine | None = None
    workflow_task: asyncio.Task[Any] | None = None
    checking_idle: bool = False
    released: bool = False
    suspending: Suspension | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel(self) -> None:
        """Deliver a durable cancellation at the workflow's current await.

        While the run is still replaying its history, the delivery waits until it reaches
        new ground (effects.cancel_point), where the workflow really is.
        """
        engine = self.engine
        if engine is None or engine.cancel_requested:
            return
        engine.cancel_requested = True
        if engine.is_replaying() and engine.recorded_cancellation() is None:
            return  # delivered where the replay reaches new ground (effects.cancel_point)
        # On new ground, or parked at the point where an earlier run's cancellation landed
        # (a worker died in the cleanup): deliver it now, where the workflow awaits.
        self.deliver_cancellation()

    def deliver_cancellation(self) -> None:
        """Cancel the workflow's asyncio task: durable.Cancelled where it awaits."""
        if self.workflow_task is not None and not self.workflow_task.done():
            self.workflow_task.cancel(effects.CANCEL_MESSAGE)

    def suspend(self, suspension: Suspension) -> None:
        """Stop running, to resume by replay when what the run waits for happens."""
        self.suspending = suspension
        if self.workflow_task is not None and not self.workflow_task.done():
            self.workflow_task.cancel(SUSPEND_MESSAGE)

    def release(self) -> None:
        """Stop running without writing an outcome (the task goes back to pending)."""
        self.released = True
        if self.workflow_task is not None and not self.workflow_task.done():
            self.workflow_task.cancel(RELEASE_MESSAGE)


@dataclass(frozen=True)
class Suspension:
    """Why a run stops: the earliest timer it waits for, and what else can wake it."""

    wake_at: datetime | None
    condition: Condition


@dataclass
class Outcome:
    """How a run ended, ready for the final write."""

    state: TaskState
    result_json: str | None = None
    error: dict[str, Any] | None = None
    suspension: Suspension | None = None
    continue_as_new: ContinueAsNew | None = None
    log_base: int | None = None


class Runner:
    """Runs claimed tasks for a worker.

    Args:
        store: the durable database.
        loader: resolves workflow references.
        suspend_after: a run that only waits on timers further away than this many seconds
            is suspended: no worker holds it and no memory is used until the timer is due.
        timer_lead: how early the worker claims a suspended task before its timer: a wait
            whose timeout is closer than this stays in memory (suspended, it would be claimed
            back at once, over and over until the timeout).
    """

    def __init__(
        self,
        store: Store,
        loader: Loader,
        *,
        suspend_after: float = 2.0,
        timer_lead: float = 0.1,
        lease_guard: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.loader = loader
        self.suspend_after = suspend_after
        self.timer_lead = timer_lead
        self.lease_guard = lease_guard

    async def run(self, running: Running) -> None:
        """Run one claimed task to its end (or until its lease is lost or it is released)."""
        claimed = running.claimed
        structlog.contextvars.bind_contextvars(task_id=claimed.id)
        try:
            await self._run(running)
        except LeaseLost:
            log.warning("lost the task to another worker; dropping it", lease=claimed.lease)
        except asyncio.CancelledError:
            if not running.released:
                raise
        finally:
            running.done.set()

    async def _run(self, running: Running) -> None:
        claimed = running.claimed
        try:
            workflow = self.loader.load(claimed.workflow)
        except WorkflowNotFound as error:
            log.warning("workflow refused", error=str(error))
            await self._finish(claimed, Writes(), _failed(error, with_traceback=False))
            return
        engine = await self._engine_for(running, workflow.options.retry)
        loop = asyncio.get_running_loop()
        task_log = capture.TaskLog(engine, loop)
        context = contextvars.copy_context()
        context.run(effects.current_engine.set, engine)
        context.run(capture.current_log.set, task_log)
        try:
            coroutine = workflow.fn(Context(engine), *claimed.args, **claimed.kwargs)
        except TypeError as error:  # arguments that do not fit the workflow's signature
            await self._finish(claimed, Writes(), _failed(error))
            return
        # A cancellation requested before this run (or a workflow timeout already past) is
        # delivered at the workflow's first durable await, inside its own try blocks: not by
        # cancelling the asyncio task before its first line runs, which would skip them.
        engine.cancel_requested = claimed.cancel_requested
        timer = self._arm_timeout(running, engine, workflow.options.timeout)
        running.workflow_task = loop.create_task(coroutine, context=context)
        log.debug("task started", workflow=claimed.workflow, attempt=claimed.attempts)
        try:
            outcome = await self._outcome(running, engine)
        finally:
            if timer is not None:
                timer.cancel()
        if running.released:
            return
        if outcome.state != TaskState.SUSPENDED:
            task_log.flush_partial()  # a replay would complete a partial line: keep it
        await engine.close()
        writes = await engine.drain()
        outcome.log_base = engine.lines_written()
        if outcome.state == TaskState.CANCELLED:
            # Before the final write: a worker that dies in between leaves the task to be run
            # again (and its children cancelled again, a no-op); after it, nothing would.
            await asyncio.shield(self._cancel_children(claimed))
        # Shielded: once the workflow has ended, its final write must not be cut in half by
        # the worker stopping; the write is idempotent and fenced anyway.
        await asyncio.shield(self._finish(claimed, writes, outcome))
        self._after(claimed, outcome)

    async def _engine_for(self, running: Running, default_retry: RetryPolicy | None) -> Engine:
        """The engine of this run, over the task's recorded history (read if there is one)."""
        claimed = running.claimed
        history: list[Recorded] = []
        log_lines = 0
        children: dict[int, tuple[str, Any, Any]] = {}
        if claimed.has_history:
            loaded = await persist(lambda: self.store.load_history(claimed.id, claimed.log_base))
            history = [Recorded(r.seq, r.kind, r.label, r.payload) for r in loaded.events]
            log_lines = loaded.log_lines
            children = loaded.children
        engine = Engine(
            StoreJournal(self.store, claimed.id, claimed.lease),
            history,
            log_lines,
            task_id=claimed.id,
            name=claimed.name,
            workflow=claimed.workflow,
            default_retry=default_retry,
            finished_children=children,
            run=claimed.run,
            log_base=claimed.log_base,
        )
        running.engine = engine
        engine.on_idle = lambda: self._consider_suspending(running)
        engine.lease_guard = self.lease_guard
        return engine

    def _arm_timeout(
        self, running: Running, engine: Engine, timeout: float | None
    ) -> asyncio.TimerHandle | None:
        """Workflow timeout: cancel the run at launch + timeout. A task suspended past its
        deadline wakes at it (its timers are capped in _suspend_if_still_idle)."""
        claimed = running.claimed
        if timeout is None or claimed.created_at is None:
            return None
        engine.deadline = claimed.created_at + timedelta(seconds=timeout)
        delay = (engine.deadline - engine.clock()).total_seconds()
        if delay <= 0:
            engine.cancel_requested = True  # past already: nothing new may start
            return None
        return asyncio.get_running_loop().call_later(delay, running.cancel)

    async def _cancel_children(self, claimed: ClaimedTask) -> None:
        """A cancelled task takes its children (not the detached ones) with it."""
        cancelled = await persist(lambda: self.store.cancel_children(claimed.id))
        if cancelled:
            log.info("cancelled children with their parent", children=cancelled)

    @staticmethod
    def _after(claimed: ClaimedTask, outcome: Outcome) -> None:
        """Log how the run ended."""
        if outcome.state == TaskState.SUSPENDED:
            log.debug("task suspended", suspension=str(outcome.suspension))
        elif outcome.continue_as_new is not None:
            log.info("task continued as new", run=claimed.run + 1)
        else:
            log.info("task finished", state=outcome.state.value)

    def _consider_suspending(self, running: Running) -> None:
        if running.checking_idle or running.suspending is not None:
            return
        engine = running.engine
        if engine is not None:
            # Every branch waits: past a cancellation `durable retry` undid, or at one that
            # an earlier run recorded (crashed in its cleanup), which lands again here.
            engine.skip_retried_cancellation()
            if engine.cancel_requested:
                if not engine.cancel_delivered and engine.recorded_cancellation() is not None:
                    running.deliver_cancellation()
                return  # cleanup code waits in memory: it must run to its end
        running.checking_idle = True
        asyncio.get_running_loop().create_task(self._suspend_if_still_idle(running))

    async def _suspend_if_still_idle(self, running: Running) -> None:
        engine = running.engine
        assert engine is not None
        try:
            # Let coroutines that are ready to run (a branch of a gather about to issue its
            # next effect) take their turn before deciding the run only waits.
            for _ in range(3):
                await asyncio.sleep(0)
            if engine.active or running.released:
                return
            wake_at = engine.earliest_timer()
            if engine.deadline is not None and (wake_at is None or engine.deadline < wake_at):
                wake_at = engine.deadline  # resumed at its timeout, to be cancelled
            condition = engine.waiting_on()
            left = None if wake_at is None else (wake_at - engine.clock()).total_seconds()
            # Waits on promises and notifications suspend (only a wake-up ends them) unless
            # their timeout is about to fire; timers only when they are far enough away to be
            # worth a claim and a replay.
            if (condition and (left is None or left > self.timer_lead)) or (
                left is not None and left > self.suspend_after
            ):
                running.suspend(Suspension(wake_at, condition))
        finally:
            running.checking_idle = False

    @staticmethod
    def _failure_or_cancel(engine: Engine, error: Exception) -> Outcome:
        if engine.nondeterminism is not None:
            return _failed(engine.nondeterminism, with_traceback=False)
        if engine.cancel_requested:
            return Outcome(TaskState.CANCELLED, error=_cancelled(engine))
        return _failed(error)

    async def _outcome(self, running: Running, engine: Engine) -> Outcome:
        assert running.workflow_task is not None
        try:
            result = await asyncio.shield(running.workflow_task)
        except LeaseLost:
            raise
        except asyncio.CancelledError:  # durable.Cancelled included
            if running.released:
                return Outcome(TaskState.PENDING)
            if running.suspending is not None:
                return Outcome(TaskState.SUSPENDED, suspension=running.suspending)
            if engine.cancel_requested:
                return Outcome(TaskState.CANCELLED, error=_cancelled(engine))
            raise
        except ContinueAsNew as again:
            if engine.nondeterminism is None and not engine.cancel_requested:
                return Outcome(TaskState.PENDING, continue_as_new=again)
            return self._failure_or_cancel(engine, again)
        except Exception as error:  # the workflow's own failure
            return self._failure_or_cancel(engine, error)
        return self._completed(engine, result)

    @staticmethod
    def _completed(engine: Engine, result: Any) -> Outcome:
        if engine.cancel_requested:
            # The cancellation reached the workflow, which caught it and returned: the task
            # still ends cancelled, as the caller asked.
            return Outcome(TaskState.CANCELLED, error=_cancelled(engine))
        engine.check_history_consumed()
        if engine.nondeterminism is not None:
            return _failed(engine.nondeterminism, with_traceback=False)
        try:
            result_json = serialization.dumps(result, "workflow result")
        except SerializationError as error:
            return _failed(error, with_traceback=False)
        return Outcome(TaskState.COMPLETE, result_json=result_json)

    async def _finish(self, claimed: ClaimedTask, writes: Writes, outcome: Outcome) -> None:
        batch = to_batch(writes)
        if outcome.continue_as_new is not None:
            again = outcome.continue_as_new
            batch = to_batch(Writes(lines=writes.lines))  # a fresh event log: no events
            assert outcome.log_base is not None
            log_base = outcome.log_base
            args_json = serialization.dumps(again.args_, "ContinueAsNew args")
            kwargs_json = serialization.dumps(again.kwargs, "ContinueAsNew kwargs")
            await persist(
                lambda: self.store.continue_as_new(
                    claimed.id,
                    claimed.lease,
                    batch,
                    log_base=log_base,
                    args_json=args_json,
                    kwargs_json=kwargs_json,
                )
            )
            return
        if outcome.state == TaskState.SUSPENDED:
            assert outcome.suspension is not None
            suspension = outcome.suspension
            await persist(
                lambda: self.store.suspend(
                    claimed.id,
                    claimed.lease,
                    batch,
                    wake_at=suspension.wake_at,
                    promises=suspension.condition.promises,
                    notification=suspension.condition.notification,
                    children=suspension.condition.children,
                )
            )
            return
        error_json = None if outcome.error is None else json.dumps(outcome.error)
        await persist(
            lambda: self.store.finish(
                claimed.id,
                claimed.lease,
                batch,
                state=outcome.state,
                result_json=outcome.result_json,
                error_json=error_json,
            )
        )


def _failed(error: BaseException, *, with_traceback: bool = True) -> Outcome:
    text = "".join(traceback.format_exception(_from_workflow(error))) if with_traceback else None
    return Outcome(
        TaskState.FAILED,
        error={"type": _type_name(error), "message": str(error), "traceback": text},
    )


def _type_name(error: BaseException) -> str:
    """The error type a user sees (a durable error may stand for a public one it derives from)."""
    return str(getattr(type(error), "public_name", type(error).__name__))


def _from_workflow(error: BaseException) -> BaseException:
    """The error with the worker's own frames (where it awaited the workflow) left out."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return error.with_traceback(tb) if tb is not None else error


def _cancelled(engine: Engine) -> dict[str, Any]:
    return {
        "type": "Cancelled",
        "message": f"task {engine.task_id} was cancelled",
        "traceback": None,
    }
