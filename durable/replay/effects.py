"""One function per effect kind. Each takes the engine and an already-assigned seq."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from durable import serialization
from durable.errors import (
    Cancelled,
    PromiseRejected,
    SerializationError,
    StepFailed,
    StepResultNotSerializable,
    TaskCancelled,
    TaskFailed,
    Timeout,
)
from durable.models import Notification, PromiseState
from durable.replay.engine import Condition, Engine
from durable.retry import RetryPolicy

# The engine of the workflow running in this asyncio task; None outside workflows and inside a
# step's own code (a step calling another @durable.step makes a plain call).
current_engine: contextvars.ContextVar[Engine | None] = contextvars.ContextVar(
    "durable_current_engine", default=None
)

STEP = "step"
SLEEP = "sleep"


def step_label(fn: Callable[..., Any], name: str | None) -> str:
    """The label a step is recorded under: its name, else the function's qualified name."""
    if name:
        return name
    target = fn.func if isinstance(fn, functools.partial) else fn
    return str(getattr(target, "__qualname__", None) or getattr(target, "__name__", repr(target)))


async def run_step(
    engine: Engine,
    seq: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    label: str,
    retry: RetryPolicy | None,
    timeout: float | None,
) -> Any:
    """Perform a step once (with retries), or return its recorded outcome."""
    recorded = engine.match(seq, STEP, label)
    attempts_done = 0
    next_at: datetime | None = None
    if recorded is not None:
        payload = recorded.payload
        if payload["status"] == "ok":
            return payload["value"]
        if payload["status"] == "error":
            raise _recorded_error(payload, label)
        attempts_done = int(payload["attempts"])
        next_at = datetime.fromisoformat(payload["next_at"])
    policy = retry or engine.default_retry
    # A step may depend on values already handed out (now, random, ...): record them first.
    await _cancellable(engine, engine.flush())
    while True:
        if next_at is not None:
            await _cancellable(engine, engine.wait_until(next_at))
        await _cancellable(engine, engine.gate())
        attempt = attempts_done + 1
        try:
            with engine.activity():
                value = await _cancellable(engine, _call(fn, args, kwargs, timeout))
            text, value = serialization.encode(value, f"step {label!r} result")
        except SerializationError as error:  # not retried: the same code returns the same
            await engine.record(seq, STEP, label, _error_payload(error, attempt))
            raise StepResultNotSerializable(str(error), step=label) from error
        except Exception as error:
            if policy.retries(error, attempt):
                next_at = engine.clock() + timedelta(seconds=policy.interval(attempt))
                payload = _error_payload(error, attempt)
                payload.update(status="retrying", next_at=next_at.isoformat())
                await engine.record(seq, STEP, label, payload)
                attempts_done = attempt
                continue
            await engine.record(seq, STEP, label, _error_payload(error, attempt))
            raise StepFailed(type(error).__name__, str(error), step=label) from error
        # Carried by the next write (see Engine.buffer_soon): "a step, then return" is one commit.
        # (The payload is {"status": "ok", "value": value, "attempts": attempt}, built as text
        # around the one serialisation of the value.)
        payload_text = f'{{"status":"ok","value":{text},"attempts":{attempt}}}'
        engine.buffer_soon(seq, STEP, label, payload_text)
        return value


TRANSACTION = "transaction"


async def run_transaction(
    engine: Engine, seq: int, fn: Callable[..., Any], args: tuple[Any, ...], *, label: str
) -> Any:
    """``fn(conn, *args)`` and its event in one database transaction: exactly once."""
    recorded = engine.match(seq, TRANSACTION, label)
    if recorded is not None:
        if recorded.payload["status"] == "ok":
            return recorded.payload["value"]
        raise _recorded_error(recorded.payload, label)
    await _cancellable(engine, engine.flush())
    await _cancellable(engine, engine.gate())

    async def body(connection: Any) -> Any:
        context = contextvars.copy_context()
        context.run(current_engine.set, None)
        value = await asyncio.get_running_loop().create_task(fn(connection, *args), context=context)
        return serialization.check(value, f"transaction {label!r} result")

    try:
        with engine.activity():
            payload = await _cancellable(
                engine, engine.journal.transaction(seq, TRANSACTION, label, body)
            )
    except SerializationError as error:
        await engine.record(seq, TRANSACTION, label, _error_payload(error, 1))
        raise StepResultNotSerializable(str(error), step=label) from error
    except Exception as error:
        # Rolled back: nothing of fn's happened. The failure is recorded so that replay takes
        # the same branch.
        await engine.record(seq, TRANSACTION, label, _error_payload(error, 1))
        raise StepFailed(type(error).__name__, str(error), step=label) from error
    return payload["value"]


def _error_payload(error: BaseException, attempt: int) -> dict[str, Any]:
    return {
        "status": "error",
        "error_type": type(error).__name__,
        "message": str(error),
        "attempts": attempt,
    }


def _recorded_error(payload: dict[str, Any], label: str) -> Exception:
    if payload["error_type"] == "SerializationError":
        return StepResultNotSerializable(payload["message"], step=label)
    return StepFailed(payload["error_type"], payload["message"], step=label)


async def _call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    # The step's own code runs outside the workflow: effects it would issue are plain calls.
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "func", None)
    )
    if is_async and timeout is None:
        # Awaited in the workflow's own task (no task per step): the workflow is parked on
        # this await meanwhile, so switching its context variable for the duration is safe.
        # As with any plain `await`, context variables the step sets stay set afterwards.
        token = current_engine.set(None)
        try:
            result = await fn(*args, **kwargs)
        finally:
            current_engine.reset(token)
        if inspect.isawaitable(result):
            result = await result
        return result
    context = contextvars.copy_context()
    context.run(current_engine.set, None)
    if is_async:
        awaitable: Awaitable[Any] = asyncio.get_running_loop().create_task(
            fn(*args, **kwargs), context=context
        )
    else:
        # Sync code runs in a thread so it cannot block the other tasks of the worker.
        call = functools.partial(context.run, fn, *args, **kwargs)
        awaitable = asyncio.get_running_loop().run_in_executor(None, call)
    if timeout is None:
        result = await awaitable
    else:
        result = await asyncio.wait_for(awaitable, timeout)
    if inspect.isawaitable(result):  # a sync callable that returned a coroutine
        result = await result
    return result


# The message of the asyncio cancellation that means "the task was cancelled" (as opposed to
# the worker suspending or handing over the run).
CANCEL_MESSAGE = "durable: task cancelled"

# True inside `async with ctx.cleanup():` effects run there although the task is cancelled.
in_cleanup: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "durable_in_cleanup", default=False
)


def cancel_point(engine: Engine) -> None:
    """Raise durable.Cancelled here if the task is being cancelled (outside cleanup blocks).

    Not during replay: a resumed run must first reach the point where it was, so that the
    cancellation lands where the workflow is now waiting and its cleanup code can run; or,
    if an earlier run was cancelled and crashed in its cleanup, the point where that
    cancellation landed (its recorded marker), so that the cleanup replays and goes on.
    """
    engine.skip_retried_cancellation()
    if not engine.cancel_requested or in_cleanup.get():
        return
    if engine.is_replaying() and engine.recorded_cancellation() is None:
        return
    engine.land_cancellation()
    raise Cancelled(f"task {engine.task_id} was cancelled")


async def _cancellable(engine: Engine, awaitable: Awaitable[Any]) -> Any:
    """Await, turning the worker's cancellation of this task into durable.Cancelled."""
    try:
        cancel_point(engine)
    except Cancelled:
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never started: no "never awaited" warning
        raise
    try:
        return await awaitable
    except asyncio.CancelledError as error:
        durable_cancel = bool(error.args) and error.args[0] == CANCEL_MESSAGE
        if durable_cancel and not in_cleanup.get():
            engine.land_cancellation()
            raise Cancelled(f"task {engine.task_id} was cancelled") from None
        raise


async def sleep_until(engine: Engine, seq: int, deadline: datetime) -> None:
    """A durable timer: the deadline is recorded first, so a resumed run waits only the rest."""
    recorded = engine.match(seq, SLEEP, SLEEP)
    if recorded is not None:
        deadline = datetime.fromisoformat(recorded.payload["until"])
    else:
        await _cancellable(
            engine, engine.record(seq, SLEEP, SLEEP, {"until": deadline.isoformat()})
        )
    await _cancellable(engine, engine.wait_until(deadline))


def now(engine: Engine) -> datetime:
    """The clock, recorded once."""
    text = engine.sync_effect("now", "now", lambda: engine.clock().isoformat())
    return datetime.fromisoformat(text)


def random_float(engine: Engine) -> float:
    """A float in [0, 1), recorded once."""
    return float(engine.sync_effect("random", "random", random.random))


def uuid4(engine: Engine) -> uuid.UUID:
    """A random UUID, recorded once."""
    return uuid.UUID(engine.sync_effect("uuid", "uuid4", lambda: str(uuid.uuid4())))


# -- promises and notifications ---------------------------------------------------------------


async def await_promise(engine: Engine, seq: int, promise_id: str, timeout: float | None) -> Any:
    """The value of durable promise ``promise_id`` (suspending while it is pending)."""
    recorded = engine.match(seq, PROMISE, promise_id)
    deadline: datetime | None = None
    if recorded is not None:
        outcome = _promise_outcome(recorded.payload, promise_id)
        if outcome is not _WAITING:
            return outcome
        until = recorded.payload.get("until")
        deadline = None if until is None else datetime.fromisoformat(until)
    elif timeout is not None:
        deadline = engine.clock() + timedelta(seconds=max(timeout, 0.0))
        # The timeout is a recorded timer: a replay times out at the same instant.
        await engine.record(
            seq, PROMISE, promise_id, {"status": "waiting", "until": deadline.isoformat()}
        )
    while True:
        state, value, message = await _cancellable(engine, engine.journal.peek_promise(promise_id))
        if state != "pending":
            payload = {"status": state, "value": value, "message": message}
            # Completed promises never change: the record may ride with the next write.
            engine.buffer(seq, PROMISE, promise_id, payload)
            return _promise_outcome(payload, promise_id)
        if deadline is not None and deadline <= engine.clock():
            engine.buffer(seq, PROMISE, promise_id, {"status": "timeout"})
            await engine.flush()
            raise Timeout(f"promise {promise_id!r} was not completed in time")
        await _cancellable(engine, engine.wait_for(Condition(promises=(promise_id,)), deadline))


PROMISE = "promise"
_WAITING = object()


def _promise_outcome(payload: dict[str, Any], promise_id: str) -> Any:
    status = payload["status"]
    if status == "resolved":
        return payload["value"]
    if status == "rejected":
        raise PromiseRejected(payload["message"] or f"promise {promise_id!r} was rejected")
    if status == "timeout":
        raise Timeout(f"promise {promise_id!r} was not completed in time")
    return _WAITING


async def complete_promise(
    engine: Engine, seq: int, promise_id: str, state: str, value: Any, message: str | None
) -> PromiseState:
    """Resolve or reject a promise from a workflow (exactly once); the state that won."""
    kind = "resolve" if state == "resolved" else "reject"
    recorded = engine.match(seq, kind, promise_id)
    if recorded is not None:
        payload = recorded.payload
    else:
        if value is not None:
            serialization.dumps(value, f"promise {promise_id!r} value")
        await _cancellable(engine, engine.flush())
        with engine.activity():
            payload = await _cancellable(
                engine,
                engine.journal.complete_promise(seq, promise_id, promise_id, state, value, message),
            )
    return PromiseState(payload["state"], payload.get("value"), payload.get("message"))


def peek_promise(engine: Engine, seq: int, promise_id: str) -> Awaitable[PromiseState]:
    """A promise's state without waiting, recorded."""

    async def peek() -> PromiseState:
        recorded = engine.match(seq, "peek", promise_id)
        if recorded is None:
            state, value, message = await _cancellable(
                engine, engine.journal.peek_promise(promise_id)
            )
            payload = {"state": state, "value": value, "message": message}
            engine.buffer(seq, "peek", promise_id, payload)
        else:
            payload = recorded.payload
        return PromiseState(payload["state"], payload["value"], payload["message"])

    return peek()


NOTIFICATION = "notification"


async def receive_notification(
    engine: Engine, seq: int, timeout: float | None
) -> Notification | None:
    """The next notification of this task's mailbox (FIFO), suspending while it is empty."""
    recorded = engine.match(seq, NOTIFICATION, NOTIFICATION)
    deadline: datetime | None = None
    if recorded is not None:
        payload = recorded.payload
        if payload["status"] == "ok":
            return _notification(payload)
        if payload["status"] == "timeout":
            return None
        deadline = datetime.fromisoformat(payload["until"])
    elif timeout is not None:
        deadline = engine.clock() + timedelta(seconds=max(timeout, 0.0))
        await engine.record(
            seq, NOTIFICATION, NOTIFICATION, {"status": "waiting", "until": deadline.isoformat()}
        )
    await _cancellable(engine, engine.flush())
    while True:
        with engine.activity():
            received = await _cancellable(
                engine, engine.journal.consume_notification(seq, NOTIFICATION)
            )
        if received is not None:
            return _notification(received)
        if deadline is not None and deadline <= engine.clock():
            await engine.record(seq, NOTIFICATION, NOTIFICATION, {"status": "timeout"})
            return None
        await _cancellable(engine, engine.wait_for(Condition(notification=True), deadline))


def _notification(payload: dict[str, Any]) -> Notification:
    return Notification(
        payload["event"], payload["data"], datetime.fromisoformat(payload["created_at"])
    )


# -- children -------------------------------------------------------------------------------

CHILD = "child"
CHILD_RESULT = "child_result"


async def start_child(engine: Engine, seq: int, spec: dict[str, Any]) -> dict[str, Any]:
    """Launch a child task once: the launch and its record commit together."""
    label = spec["workflow"]
    recorded = engine.match(seq, CHILD, label)
    if recorded is not None:
        return dict(recorded.payload)
    if spec["key"] is None:
        # Deterministic per parent and seq: a launch retried after a lost reply finds it.
        spec = {**spec, "key": f"durable-child:{engine.task_id}:{engine.run}:{seq}"}
    serialization.dumps(spec["args"], f"child {label!r} args")
    serialization.dumps(spec["kwargs"], f"child {label!r} kwargs")
    await _cancellable(engine, engine.flush())
    with engine.activity():
        launched = await _cancellable(engine, engine.launch_child(seq, label, spec))
        return dict(launched)


async def child_result(engine: Engine, seq: int, child_id: int) -> Any:
    """The result of a child task, suspending the parent until the child has ended."""
    label = str(child_id)
    recorded = engine.match(seq, CHILD_RESULT, label)
    if recorded is not None:
        return _child_outcome(recorded.payload, child_id)
    while True:
        known = engine.finished_children.get(child_id)
        if known is None:
            with engine.activity():
                known = await _cancellable(engine, engine.journal.task_outcome(child_id))
        state, result, error = known
        if state in ("complete", "failed", "cancelled"):
            payload = {"state": state, "result": result, "error": error}
            # A final task never changes: the record may ride with the next write.
            engine.buffer(seq, CHILD_RESULT, label, payload)
            return _child_outcome(payload, child_id)
        await _cancellable(engine, engine.wait_for(Condition(children=(child_id,)), None))


def _child_outcome(payload: dict[str, Any], child_id: int) -> Any:
    state = payload["state"]
    if state == "complete":
        return payload["result"]
    if state == "cancelled":
        raise TaskCancelled(f"child task {child_id} was cancelled", task_id=child_id)
    raise TaskFailed.from_error(f"child task {child_id}", child_id, payload["error"])
