"""One function per effect kind: the part the workflow awaits, and the performer behind it.

Each function runs in workflow code with an already-assigned seq: it matches the recorded
event, builds a *performer* (the coroutine that does the effect on the worker's loop, on new
ground only) and waits for the engine to deliver the outcome, which it turns into the value or
exception the workflow sees. Decoding happens here, on delivery, the same way on the first run
and on every replay.
"""

from __future__ import annotations

import asyncio
import functools
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from durable import serialization
from durable.errors import (
    PromiseRejected,
    SerializationError,
    StepFailed,
    StepResultNotSerializable,
    TaskCancelled,
    TaskFailed,
    Timeout,
)
from durable.models import Notification, PromiseState
from durable.replay import capture
from durable.replay.engine import (
    CANCEL_MESSAGE,
    Arrival,
    Condition,
    Effect,
    Engine,
    current_engine,
    in_cleanup,
)
from durable.replay.history import (
    CAUSE,
    CHILD,
    CHILD_RESULT,
    NOTIFICATION,
    NOW,
    PEEK,
    PRINTED_LINES,
    PROMISE,
    RANDOM,
    REJECT,
    RESOLVE,
    SLEEP,
    STEP,
    TRANSACTION,
    UUID,
    error_payload,
)
from durable.retry import RetryPolicy

__all__ = ["CANCEL_MESSAGE", "current_engine", "in_cleanup"]


def step_label(fn: Callable[..., Any], name: str | None) -> str:
    """The label a step is recorded under: its name, else the function's qualified name."""
    if name:
        return name
    target = fn.func if isinstance(fn, functools.partial) else fn
    return str(getattr(target, "__qualname__", None) or getattr(target, "__name__", repr(target)))


# -- steps ------------------------------------------------------------------------------------


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
    if recorded is not None and not recorded.is_final() and not recorded.retried:
        attempts_done = int(recorded.payload["attempts"])
        next_at = datetime.fromisoformat(recorded.payload["next_at"])
    policy = retry or engine.default_retry

    async def perform(effect: Effect) -> Arrival:
        return await _perform_step(
            engine, effect, fn, args, kwargs, policy, timeout, attempts_done, next_at
        )

    payload = await engine.effect(seq, STEP, label, recorded, perform)
    return _step_outcome(payload, label, seq)


async def _perform_step(
    engine: Engine,
    effect: Effect,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    policy: RetryPolicy,
    timeout: float | None,
    attempts_done: int,
    next_at: datetime | None,
) -> Arrival:
    seq, label = effect.seq, effect.label
    # A step may depend on values already handed out (now, random, ...): record them first.
    await engine.flush()
    # What the step's code prints reaches the task's log when its outcome is delivered.
    output = capture.StepOutput()
    capture.current_log.set(output)  # this performer's own context
    while True:
        if next_at is not None:
            await engine.wait_until(effect, next_at)
        await engine.admit_step()
        attempt = attempts_done + 1
        try:
            with engine.activity():
                try:
                    value = await engine.host.call_step(fn, args, kwargs, timeout, label=label)
                finally:
                    output.flush_partial()
            text, value = serialization.encode(value, f"step {label!r} result")
        except SerializationError as error:  # not retried: the same code returns the same
            return _failed(error, attempt, output), None
        except asyncio.CancelledError as error:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the workflow stopped waiting for it
            # the step's code cancelled itself
            return _failed(error, attempt, output), None
        except Exception as error:
            if policy.retries(error, attempt):
                next_at = engine.clock() + timedelta(seconds=policy.interval(attempt))
                payload = error_payload(error, attempt)
                payload.update(status="retrying", next_at=next_at.isoformat())
                await engine.record(seq, STEP, label, payload)
                attempts_done = attempt
                continue
            return _failed(error, attempt, output), None
        except BaseException as error:  # SystemExit, KeyboardInterrupt from a step's code
            return _failed(error, attempt, output), None
        return _printed({"status": "ok", "value": value, "attempts": attempt}, output), text


def _printed(payload: dict[str, Any], output: capture.StepOutput) -> dict[str, Any]:
    if output.lines:
        payload[PRINTED_LINES] = output.lines
    return payload


def _failed(error: BaseException, attempt: int, output: capture.StepOutput) -> dict[str, Any]:
    payload = _printed(error_payload(error, attempt), output)
    payload[CAUSE] = error
    return payload


def _step_outcome(payload: dict[str, Any], label: str, seq: int) -> Any:
    if payload["status"] == "ok":
        return payload["value"]
    raise recorded_error(payload, label, seq) from payload.get(CAUSE)


def recorded_error(payload: dict[str, Any], label: str, seq: int) -> Exception:
    """The exception a failed step or transaction raises in the workflow (a fresh one)."""
    error: StepFailed
    if payload["error_type"] == "SerializationError":
        error = StepResultNotSerializable(payload["message"], step=label)
    else:
        error = StepFailed(payload["error_type"], payload["message"], step=label)
    error.seq = seq  # `durable retry` runs the steps whose failure ended the task again
    return error


# -- transactions -------------------------------------------------------------------------------


async def run_transaction(
    engine: Engine, seq: int, fn: Callable[..., Any], args: tuple[Any, ...], *, label: str
) -> Any:
    """``fn(conn, *args)`` and its event in one database transaction: exactly once."""
    recorded = engine.match(seq, TRANSACTION, label)

    async def perform(effect: Effect) -> Arrival:
        await engine.flush()
        await engine.admit_step()

        async def body(connection: Any) -> Any:
            value = await fn(connection, *args)
            return serialization.check(value, f"transaction {label!r} result")

        try:
            with engine.activity():
                return await engine.journal.transaction(seq, TRANSACTION, label, body), None
        except Exception as error:
            # Rolled back: nothing of fn's happened. The failure is recorded on delivery so
            # that replay takes the same branch.
            return {**error_payload(error, 1), CAUSE: error}, None

    payload = await engine.effect(seq, TRANSACTION, label, recorded, perform)
    return _step_outcome(payload, label, seq)


# -- time --------------------------------------------------------------------------------------


async def sleep_until(engine: Engine, seq: int, deadline: datetime) -> None:
    """A durable timer: the deadline is recorded when issued, so a resumed run waits the rest."""
    recorded = engine.match(seq, SLEEP, SLEEP)
    if recorded is not None:
        deadline = datetime.fromisoformat(recorded.payload["until"])
    else:
        engine.buffer_soon(seq, SLEEP, SLEEP, {"until": deadline.isoformat()})

    async def perform(effect: Effect) -> Arrival:
        await engine.wait_until(effect, deadline)
        return {"until": deadline.isoformat()}, None

    await engine.effect(seq, SLEEP, SLEEP, recorded, perform)


def now(engine: Engine) -> datetime:
    """The clock, recorded once."""
    text = engine.sync_effect(NOW, "now", lambda: engine.clock().isoformat())
    return datetime.fromisoformat(text)


def random_float(engine: Engine) -> float:
    """A float in [0, 1), recorded once."""
    return float(engine.sync_effect(RANDOM, "random", random.random))


def uuid4(engine: Engine) -> uuid.UUID:
    """A random UUID, recorded once."""
    return uuid.UUID(engine.sync_effect(UUID, "uuid4", lambda: str(uuid.uuid4())))


# -- promises and notifications ---------------------------------------------------------------


async def await_promise(engine: Engine, seq: int, promise_id: str, timeout: float | None) -> Any:
    """The value of durable promise ``promise_id`` (suspending while it is pending)."""
    recorded = engine.match(seq, PROMISE, promise_id)
    deadline: datetime | None = None
    if recorded is not None and not recorded.is_final():
        until = recorded.payload.get("until")
        deadline = None if until is None else datetime.fromisoformat(until)
    elif recorded is None and timeout is not None:
        deadline = engine.clock() + timedelta(seconds=max(timeout, 0.0))
        # The timeout is a recorded timer: a replay times out at the same instant.
        engine.buffer_soon(
            seq, PROMISE, promise_id, {"status": "waiting", "until": deadline.isoformat()}
        )

    async def perform(effect: Effect) -> Arrival:
        while True:
            with engine.activity():
                state, value, message = await engine.journal.peek_promise(promise_id)
            if state != "pending":
                return {"status": state, "value": value, "message": message}, None
            if deadline is not None and deadline <= engine.clock():
                return {"status": "timeout"}, None
            await engine.wait_for(effect, Condition(promises=(promise_id,)), deadline)

    payload = await engine.effect(seq, PROMISE, promise_id, recorded, perform)
    return _promise_outcome(payload, promise_id)


def _promise_outcome(payload: dict[str, Any], promise_id: str) -> Any:
    status = payload["status"]
    if status == "resolved":
        return payload["value"]
    if status == "rejected":
        raise PromiseRejected(payload["message"] or f"promise {promise_id!r} was rejected")
    raise Timeout(f"promise {promise_id!r} was not completed in time")


async def complete_promise(
    engine: Engine, seq: int, promise_id: str, state: str, value: Any, message: str | None
) -> PromiseState:
    """Resolve or reject a promise from a workflow (exactly once); the state that won."""
    kind = RESOLVE if state == "resolved" else REJECT
    recorded = engine.match(seq, kind, promise_id)
    if recorded is None and value is not None:
        serialization.dumps(value, f"promise {promise_id!r} value")

    async def perform(effect: Effect) -> Arrival:
        await engine.flush()
        with engine.activity():
            return await engine.journal.complete_promise(
                seq, promise_id, promise_id, state, value, message
            ), None

    payload = await engine.effect(seq, kind, promise_id, recorded, perform)
    return PromiseState(payload["state"], payload.get("value"), payload.get("message"))


async def peek_promise(engine: Engine, seq: int, promise_id: str) -> PromiseState:
    """A promise's state without waiting, recorded."""
    recorded = engine.match(seq, PEEK, promise_id)

    async def perform(effect: Effect) -> Arrival:
        with engine.activity():
            state, value, message = await engine.journal.peek_promise(promise_id)
        return {"state": state, "value": value, "message": message}, None

    payload = await engine.effect(seq, PEEK, promise_id, recorded, perform)
    return PromiseState(payload["state"], payload["value"], payload["message"])


async def receive_notification(
    engine: Engine, seq: int, timeout: float | None
) -> Notification | None:
    """The next notification of this task's mailbox (FIFO), suspending while it is empty."""
    recorded = engine.match(seq, NOTIFICATION, NOTIFICATION)
    deadline: datetime | None = None
    if recorded is not None and not recorded.is_final():
        deadline = datetime.fromisoformat(recorded.payload["until"])
    elif recorded is None and timeout is not None:
        deadline = engine.clock() + timedelta(seconds=max(timeout, 0.0))
        engine.buffer_soon(
            seq, NOTIFICATION, NOTIFICATION, {"status": "waiting", "until": deadline.isoformat()}
        )

    async def perform(effect: Effect) -> Arrival:
        await engine.flush()
        while True:
            with engine.activity():
                received = await engine.journal.consume_notification(seq, NOTIFICATION)
            if received is not None:
                return received, None
            if deadline is not None and deadline <= engine.clock():
                return {"status": "timeout"}, None
            await engine.wait_for(effect, Condition(notification=True), deadline)

    payload = await engine.effect(seq, NOTIFICATION, NOTIFICATION, recorded, perform)
    if payload["status"] == "timeout":
        return None
    return Notification(
        payload["event"], payload["data"], datetime.fromisoformat(payload["created_at"])
    )


# -- children -------------------------------------------------------------------------------


async def start_child(engine: Engine, seq: int, spec: dict[str, Any]) -> dict[str, Any]:
    """Launch a child task once: the launch and its record commit together."""
    label = spec["workflow"]
    recorded = engine.match(seq, CHILD, label)
    if recorded is None:
        if spec["key"] is None:
            # Deterministic per parent and seq: a launch retried after a lost reply finds it.
            spec = {**spec, "key": f"durable-child:{engine.task_id}:{engine.generation}:{seq}"}
        serialization.dumps(spec["args"], f"child {label!r} args")
        serialization.dumps(spec["kwargs"], f"child {label!r} kwargs")

    async def perform(effect: Effect) -> Arrival:
        await engine.flush()
        with engine.activity():
            return dict(await engine.launch_child(seq, label, spec)), None

    return dict(await engine.effect(seq, CHILD, label, recorded, perform))


async def child_result(engine: Engine, seq: int, child_id: int) -> Any:
    """The result of a child task, suspending the parent until the child has ended."""
    label = str(child_id)
    recorded = engine.match(seq, CHILD_RESULT, label)

    async def perform(effect: Effect) -> Arrival:
        while True:
            known = engine.finished_children.get(child_id)
            if known is None:
                with engine.activity():
                    known = await engine.journal.task_outcome(child_id)
            state, result, error = known
            if state in ("complete", "failed", "cancelled"):
                return {"state": state, "result": result, "error": error}, None
            await engine.wait_for(effect, Condition(children=(child_id,)), None)

    payload = await engine.effect(seq, CHILD_RESULT, label, recorded, perform)
    state = payload["state"]
    if state == "complete":
        return payload["result"]
    if state == "cancelled":
        raise TaskCancelled(f"child task {child_id} was cancelled", task_id=child_id)
    raise TaskFailed.from_error(f"child task {child_id}", child_id, payload["error"])
