"""One claimed task: load the workflow, replay it, record its effects, write how it ended."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from durable import metrics, serialization
from durable.context import Context
from durable.errors import ContinueAsNew, SerializationError, StepFailed, WorkflowNotFound
from durable.models import TaskState
from durable.replay import capture, effects
from durable.replay.control import LeaseLost
from durable.replay.engine import Engine, Host, RunEnd, RunSpec, Suspension, utcnow
from durable.replay.history import safe_str
from durable.replay.journal import Recorded, Writes
from durable.store.store import ClaimedTask, Store
from durable.worker.journal import StoreJournal, persist, to_batch
from durable.worker.loader import Loader
from durable.worker.steps import StepHost
from durable.worker.tracebacks import HIDDEN_DIRS, user_traceback
from durable.workflow import WorkflowOptions

log = structlog.get_logger("durable.worker")


@dataclass
class Running:
    """A task this worker is running now."""

    claimed: ClaimedTask
    engine: Engine | None = None
    released: bool = False
    cancel_requested: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel(self) -> None:
        """Cancel the task: durable.Cancelled where the workflow waits, once its replay is
        done (the engine decides where; see engine.py)."""
        self.cancel_requested = True
        if self.engine is not None:
            self.engine.request_cancel()

    def release(self) -> None:
        """Stop running without writing an outcome (the task goes back to pending)."""
        self.released = True
        if self.engine is not None:
            self.engine.release()


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
        host_factory: makes the host of each run from ``lease_guard`` (a test environment
            gives its runs a virtual clock and mocked steps).
        strict: the determinism guard on workflow code (``durable-worker --strict``).
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
        host_factory: Callable[[Callable[[], Awaitable[None]] | None], Host] = StepHost,
        strict: bool = False,
    ) -> None:
        self.strict = strict
        self.host_factory = host_factory
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
        except Exception as error:  # a bug, or an outcome the database refused
            log.exception("runner crashed; failing the task", error=safe_str(error))
            await self._fail_after_crash(claimed, error)
        finally:
            running.done.set()

    async def _fail_after_crash(self, claimed: ClaimedTask, error: Exception) -> None:
        """No task stays ``running`` under a live worker (SPEC 5): what could not be written
        ends the task ``failed``, saying why, with nothing else written."""
        outcome = _failed(
            RuntimeError(
                "durable could not run or store this task's outcome: "
                f"{type(error).__name__}: {safe_str(error)}"
            ),
            with_traceback=False,
        )
        try:
            await asyncio.shield(self._finish(claimed, Writes(), outcome))
        except LeaseLost:
            pass
        except Exception:
            log.exception("could not fail the task either; it is left to the lease takeover")

    async def _run(self, running: Running) -> None:
        claimed = running.claimed
        try:
            workflow = self.loader.load(claimed.workflow)
        except WorkflowNotFound as error:
            log.warning("workflow refused", error=str(error))
            await self._finish(claimed, Writes(), _failed(error, with_traceback=False))
            return
        engine = await self._engine_for(running, workflow.options)
        if running.released:
            return
        loop = asyncio.get_running_loop()
        task_log = capture.TaskLog(engine, loop)
        context = contextvars.copy_context()
        context.run(effects.current_engine.set, engine)
        context.run(capture.current_log.set, task_log)
        # Effects are performed outside the workflow's context: a step's prints are collected
        # by its performer and reach the log when its outcome is delivered (effects.py).
        step_context = contextvars.copy_context()
        step_context.run(capture.current_log.set, None)
        try:
            coroutine = workflow.fn(Context(engine), *claimed.args, **claimed.kwargs)
        except TypeError as error:  # arguments that do not fit the workflow's signature
            await self._finish(claimed, Writes(), _failed(error))
            return
        timer = self._arm_timeout(engine)
        log.debug("task started", workflow=claimed.workflow, attempt=claimed.attempts)
        try:
            await self._run_engine(running, engine, coroutine, context, step_context, task_log)
        finally:
            if timer is not None:
                timer.cancel()
            engine.dispose()

    async def _run_engine(
        self,
        running: Running,
        engine: Engine,
        coroutine: Any,
        context: contextvars.Context,
        step_context: contextvars.Context,
        task_log: capture.TaskLog,
    ) -> None:
        claimed = running.claimed
        end = await engine.run(coroutine, context, step_context)
        if end.released or running.released:
            return
        outcome = self._outcome(engine, end)
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

    async def _engine_for(self, running: Running, options: WorkflowOptions) -> Engine:
        """The engine of this run, over the task's recorded history (read if there is one)."""
        claimed = running.claimed
        history: tuple[Recorded, ...] = ()
        log_lines = 0
        children: dict[int, tuple[str, Any, Any]] = {}
        if claimed.has_history:
            loaded = await persist(lambda: self.store.load_history(claimed.id, claimed.log_base))
            history = tuple(Recorded(r.seq, r.kind, r.label, r.payload) for r in loaded.events)
            log_lines = loaded.log_lines
            children = loaded.children
        deadline = None
        if options.timeout is not None and claimed.created_at is not None:
            deadline = claimed.created_at + timedelta(seconds=options.timeout)
        spec = RunSpec(
            task_id=claimed.id,
            name=claimed.name,
            workflow=claimed.workflow,
            history=history,
            log_lines=log_lines,
            run=claimed.run,
            log_base=claimed.log_base,
            finished_children=children,
            default_retry=options.retry,
            # A cancellation requested before this run (or a workflow timeout already past) is
            # delivered at the workflow's first wait on new ground, inside its own try blocks.
            cancel_requested=claimed.cancel_requested
            or running.cancel_requested
            or (deadline is not None and deadline <= utcnow()),
            deadline=deadline,
            suspend_after=self.suspend_after,
            timer_lead=self.timer_lead,
            strict=self.strict,
        )
        engine = Engine(
            spec,
            StoreJournal(self.store, claimed.id, claimed.lease),
            self.host_factory(self.lease_guard),
        )
        running.engine = engine
        return engine

    @staticmethod
    def _arm_timeout(engine: Engine) -> asyncio.TimerHandle | None:
        """Workflow timeout: cancel the run at launch + timeout. A task suspended past its
        deadline wakes at it (the engine caps its wake-up time)."""
        deadline = engine.spec.deadline
        if deadline is None:
            return None
        delay = (deadline - utcnow()).total_seconds()
        if delay <= 0:
            return None  # past already: the run starts cancelled
        return asyncio.get_running_loop().call_later(delay, engine.request_cancel)

    async def _cancel_children(self, claimed: ClaimedTask) -> None:
        """A cancelled task takes its children (not the detached ones) with it."""
        cancelled = await persist(lambda: self.store.cancel_children(claimed.id))
        if cancelled:
            log.info("cancelled children with their parent", children=cancelled)

    @staticmethod
    def _after(claimed: ClaimedTask, outcome: Outcome) -> None:
        """Log how the run ended."""
        metrics.run_ended(outcome.state.value)
        if outcome.state == TaskState.SUSPENDED:
            log.debug("task suspended", suspension=str(outcome.suspension))
        elif outcome.continue_as_new is not None:
            log.info("task continued as new", run=claimed.run + 1)
        else:
            log.info("task finished", state=outcome.state.value)

    @staticmethod
    def _failure_or_cancel(engine: Engine, error: BaseException) -> Outcome:
        if engine.nondeterminism is not None:
            return _failed(engine.nondeterminism, with_traceback=False)
        if engine.cancel_requested:
            return Outcome(TaskState.CANCELLED, error=_cancelled(engine))
        return _failed(error)

    def _outcome(self, engine: Engine, end: RunEnd) -> Outcome:
        if end.suspension is not None:
            return Outcome(TaskState.SUSPENDED, suspension=end.suspension)
        error = end.error
        if error is None:
            return self._completed(engine, end.value)
        if isinstance(error, ContinueAsNew):
            if engine.nondeterminism is None and not engine.cancel_requested:
                return Outcome(TaskState.PENDING, continue_as_new=error)
        elif isinstance(error, asyncio.CancelledError) and not engine.cancel_requested:
            # Not durable's cancellation: the workflow's own code cancelled itself.
            return _failed(error)
        return self._failure_or_cancel(engine, error)

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
    text = _traceback_text(error) if with_traceback else None
    stored: dict[str, Any] = {
        "type": _type_name(error),
        # Stored whatever they hold: a NUL or a lone surrogate is escaped.
        "message": serialization.storable_text(safe_str(error)),
        "traceback": None if text is None else serialization.storable_text(text),
    }
    failed_steps = _failed_steps(error)
    if failed_steps:
        # `durable retry` runs these steps again instead of replaying their failure.
        stored["failed_steps"] = failed_steps
    return Outcome(TaskState.FAILED, error=stored)


def _failed_steps(error: BaseException) -> list[int]:
    """Seqs of the step failures that the workflow's exception is, or was raised from."""
    seqs: list[int] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StepFailed) and current.seq is not None:
            seqs.append(current.seq)
        current = current.__cause__ or current.__context__
    return sorted(set(seqs))


def _traceback_text(error: BaseException) -> str:
    try:
        return user_traceback(error, hidden_dirs=(*HIDDEN_DIRS, _ASYNCIO_DIR))
    except Exception:  # an exception whose __str__ (or a chained one's) raises
        return f"{_type_name(error)}: {safe_str(error)}"


def _type_name(error: BaseException) -> str:
    """The error type a user sees (a durable error may stand for a public one it derives from)."""
    return str(getattr(type(error), "public_name", type(error).__name__))


# asyncio's own frames (the workflow loop's tasks) are durable's machinery too.
_ASYNCIO_DIR = Path(asyncio.__file__).resolve().parent


def _cancelled(engine: Engine) -> dict[str, Any]:
    return {
        "type": "Cancelled",
        "message": f"task {engine.task_id} was cancelled",
        "traceback": None,
    }
