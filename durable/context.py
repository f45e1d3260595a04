"""Context: what a workflow is handed. Every method delegates to the replay engine."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from durable.errors import PromiseRejected
from durable.models import Notification, PromiseState, TaskHandle
from durable.replay import effects
from durable.replay.engine import Engine
from durable.retry import RetryPolicy
from durable.workflow import Workflow, declared_queue, reference_of

if TYPE_CHECKING:
    from durable.http import DurableHttp

T = TypeVar("T")


def issue_step(
    engine: Engine,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    label: str,
    retry: RetryPolicy | None,
    timeout: float | None,
) -> Awaitable[Any]:
    """Number a step now (issue order) and return the awaitable that performs it."""
    seq = engine.next_seq()
    return effects.run_step(
        engine, seq, fn, args, kwargs, label=label, retry=retry, timeout=timeout
    )


class ChildTask(TaskHandle):
    """A child task started with ``ctx.start``; ``await handle.result()`` waits for it."""

    _engine: Engine

    def result(self) -> Awaitable[Any]:
        """The child's result; the parent is suspended until the child has ended.

        Raises:
            durable.TaskFailed: the child failed (``error_type``, ``error_message``).
            durable.TaskCancelled: the child was cancelled.
        """
        seq = self._engine.next_seq()
        return effects.child_result(self._engine, seq, self.id)


class TaskLogger:
    """``ctx.log``: lines written to the task's log (once, never again on replay).

    Called like the standard library's loggers: ``ctx.log.info("charged %s", order_id)``,
    plus optional ``key=value`` fields appended to the line. An info line is the message
    itself, as ``print`` would write it; the other levels start with their name
    (``WARNING: ...``).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _write(self, prefix: str, message: object, args: tuple[Any, ...], fields: Any) -> None:
        text = str(message) % args if args else str(message)
        extra = "".join(f" {key}={value!r}" for key, value in fields.items())
        for line in f"{prefix}{text}{extra}".split("\n"):
            self._engine.log_line(line)

    def debug(self, message: object, *args: Any, **fields: Any) -> None:
        """Log at debug level (``DEBUG: message``)."""
        self._write("DEBUG: ", message, args, fields)

    def info(self, message: object, *args: Any, **fields: Any) -> None:
        """Log at info level: the line is the message itself."""
        self._write("", message, args, fields)

    def warning(self, message: object, *args: Any, **fields: Any) -> None:
        """Log at warning level (``WARNING: message``)."""
        self._write("WARNING: ", message, args, fields)

    def error(self, message: object, *args: Any, **fields: Any) -> None:
        """Log at error level (``ERROR: message``)."""
        self._write("ERROR: ", message, args, fields)


class Context:
    """The face of durable inside a workflow; valid only in the workflow it was given to.

    Every effect is numbered when it is issued and recorded in the task's event log; on replay
    the recorded outcome is returned instead of performing it again.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.log = TaskLogger(engine)

    @property
    def task_id(self) -> int:
        """The id of this task."""
        return self._engine.task_id

    @property
    def name(self) -> str:
        """The task's human label, as given at launch."""
        return self._engine.name

    @property
    def workflow(self) -> str:
        """The workflow reference, ``module:qualname``."""
        return self._engine.workflow

    @property
    def http(self) -> DurableHttp:
        """HTTP calls recorded as steps (``await ctx.http.get(url)``; extra ``http``)."""
        from durable.http import DurableHttp

        return DurableHttp(self)

    @property
    def is_replaying(self) -> bool:
        """True while the run is re-reading recorded history."""
        return self._engine.is_replaying()

    def step(
        self,
        fn: Callable[..., T | Awaitable[T]],
        *args: Any,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Awaitable[T]:
        """Run ``fn(*args, **kwargs)`` once and record its result.

        Async functions are awaited; sync ones run in a thread. On replay the recorded result
        is returned and ``fn`` is not called.

        Args:
            fn: the function to run.
            *args: its positional arguments.
            name: the label it is recorded under (default: ``fn``'s qualified name).
            retry: its retry policy (default: the workflow's, else one attempt).
            timeout: seconds allowed per attempt.
            **kwargs: its keyword arguments.

        Raises:
            durable.StepFailed: the step raised on its last attempt (also on every replay).
            durable.SerializationError: the result is not JSON (the step is not retried).
        """
        label = effects.step_label(fn, name)
        return issue_step(self._engine, fn, args, kwargs, label=label, retry=retry, timeout=timeout)

    def transaction(
        self, fn: Callable[..., Awaitable[T]], *args: Any, name: str | None = None
    ) -> Awaitable[T]:
        """Run ``await fn(conn, *args)`` exactly once, in one transaction with its record.

        ``conn`` is an asyncpg connection to the durable database, inside a transaction that
        also checks this worker still holds the task and records the result: either all of it
        commits or none of it does, so the changes are committed exactly once even when
        workers crash or race.

        Raises:
            durable.StepFailed: ``fn`` raised (its transaction was rolled back).
        """
        label = effects.step_label(fn, name)
        seq = self._engine.next_seq()
        return effects.run_transaction(self._engine, seq, fn, args, label=label)

    async def start(
        self,
        workflow: Workflow | str,
        *args: Any,
        name: str | None = None,
        key: str | None = None,
        detached: bool = False,
        **kwargs: Any,
    ) -> ChildTask:
        """Launch a child task (exactly once) and return its handle.

        Args:
            workflow: a ``@durable.workflow`` or ``"module:function"``.
            *args: its JSON positional arguments.
            name: its label (default: the workflow reference).
            key: an idempotency key (default: one derived from this task and the call).
            detached: a detached child outlives its parent: it is not cancelled with it.
            **kwargs: its JSON keyword arguments.
        """
        reference = reference_of(workflow)
        queue = declared_queue(workflow) or "default"
        seq = self._engine.next_seq()
        spec = {
            "name": name if name is not None else reference,
            "workflow": reference,
            "args": list(args),
            "kwargs": dict(kwargs),
            "key": key,
            "queue": queue,
            "detached": detached,
        }
        launched = await effects.start_child(self._engine, seq, spec)
        handle = ChildTask(
            id=launched["task_id"],
            name=launched["name"],
            workflow=launched["workflow"],
            created=launched["created"],
        )
        object.__setattr__(handle, "_engine", self._engine)
        return handle

    async def call(self, workflow: Workflow | str, *args: Any, **kwargs: Any) -> Any:
        """Start a child task and wait for its result (``start`` then ``result``)."""
        handle = await self.start(workflow, *args, **kwargs)
        return await handle.result()

    def sleep(self, duration: float | timedelta) -> Awaitable[None]:
        """A durable timer of ``duration`` seconds (or a timedelta)."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        seq = self._engine.next_seq()
        # The deadline is fixed when the sleep is issued, and recorded; replay reads it back.
        deadline = self._engine.clock() + timedelta(seconds=max(seconds, 0.0))
        return effects.sleep_until(self._engine, seq, deadline)

    def sleep_until(self, deadline: datetime) -> Awaitable[None]:
        """A durable timer until an aware datetime."""
        if deadline.tzinfo is None:
            raise ValueError("ctx.sleep_until needs a timezone-aware datetime")
        seq = self._engine.next_seq()
        return effects.sleep_until(self._engine, seq, deadline.astimezone(UTC))

    def promise(self, promise_id: str, timeout: float | None = None) -> Awaitable[Any]:
        """Wait for durable promise ``promise_id`` and return its value.

        The task is suspended while the promise is pending (no worker holds it) and woken when
        it is completed, from any workflow, client or `durable promise resolve`.

        Raises:
            durable.PromiseRejected: the promise was rejected (with its message).
            durable.Timeout: ``timeout`` seconds passed first (a recorded timer: a replay
                times out at the same instant).
        """
        seq = self._engine.next_seq()
        return effects.await_promise(self._engine, seq, promise_id, timeout)

    async def resolve(self, promise_id: str, value: Any = None) -> Any:
        """Resolve promise ``promise_id`` (at most once); return the value that won.

        If the promise had been rejected before, raises durable.PromiseRejected.
        """
        seq = self._engine.next_seq()
        won = await effects.complete_promise(self._engine, seq, promise_id, "resolved", value, None)
        if won.state == "rejected":
            raise PromiseRejected(won.message or f"promise {promise_id!r} was rejected")
        return won.value

    async def reject(self, promise_id: str, message: str) -> Any:
        """Reject promise ``promise_id`` (at most once).

        Returns the value that won: None when a rejection won, else the value it had been
        resolved with.
        """
        seq = self._engine.next_seq()
        won = await effects.complete_promise(
            self._engine, seq, promise_id, "rejected", None, message
        )
        return won.value if won.state == "resolved" else None

    def peek(self, promise_id: str) -> Awaitable[PromiseState]:
        """The promise's state now, without waiting (recorded)."""
        seq = self._engine.next_seq()
        return effects.peek_promise(self._engine, seq, promise_id)

    def notification(self, timeout: float | None = None) -> Awaitable[Notification | None]:
        """The next notification sent to this task (FIFO), or None when ``timeout`` runs out.

        Notifications sent before the task waits are kept in its mailbox. The task is
        suspended while the mailbox is empty.
        """
        seq = self._engine.next_seq()
        return effects.receive_notification(self._engine, seq, timeout)

    def patched(self, change_id: str) -> bool:
        """Whether this run takes the new code path of change ``change_id``.

        True for runs that reach this point for the first time; False while replaying a
        history recorded before the patch existed, so in-flight tasks keep their old path::

            if ctx.patched("send-sms"):
                await ctx.step(send_sms, user)
        """
        return self._engine.patched(change_id)

    @contextlib.asynccontextmanager
    async def cleanup(self) -> AsyncIterator[None]:
        """Effects inside this block run even though the task is being cancelled::

            try:
                await ctx.promise("approval")
            except durable.Cancelled:
                async with ctx.cleanup():
                    await ctx.step(release_reservation, order_id)
                raise

        The task still ends ``cancelled``.
        """
        token = effects.in_cleanup.set(True)
        try:
            yield
        finally:
            effects.in_cleanup.reset(token)

    def now(self) -> datetime:
        """The current time (UTC-aware), the same on every replay."""
        return effects.now(self._engine)

    def random(self) -> float:
        """A float in [0, 1), the same on every replay."""
        return effects.random_float(self._engine)

    def uuid4(self) -> uuid.UUID:
        """A random UUID, the same on every replay."""
        return effects.uuid4(self._engine)
