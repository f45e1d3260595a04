"""`WorkflowEnvironment.check_replay`: a finished task run again from every crash point.

A worker that crashes leaves a prefix of the task's history: the outcomes delivered before
some delivery ``k`` (each recorded with its delivery position), and what the workflow had
issued by then. For every ``k`` this module rebuilds that state from the finished history and
runs the workflow on it to its end, as the next worker would: the recorded part replays, and
the rest is performed again (a step whose outcomes were all recorded must not run), with the
environment's mocked steps (or the step's code), an
instant clock, and the finished history standing in for the database (transactions,
promises, notifications and children get the outcomes they had). Any NonDeterminismError
fails the check. The whole history must then replay to the recorded result without running
a single step.

Which seqs had been issued at crash point ``k`` is not written down; every seq up to the last
one delivered before ``k`` certainly had (seqs are handed out in issue order), so the state
built keeps the undelivered records (clock reads, timer deadlines) of those seqs only: a real
crash may have left more of them, never fewer.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from durable import serialization
from durable.context import Context
from durable.errors import NonDeterminismError
from durable.replay import capture, effects, history
from durable.replay.engine import Engine, RunSpec, utcnow
from durable.replay.history import Recorded
from durable.replay.journal import Writes
from durable.testing.mocks import Mocks, StepMock
from durable.worker.steps import call
from durable.workflow import Workflow

# Real seconds a run from one crash point may take before the check gives up on it.
RUN_LIMIT = 30.0


class ReplayCheckFailed(AssertionError):
    """The workflow does not replay its own history from some crash point."""


@dataclass(frozen=True)
class CrashPoint:
    """The history a crash just before delivery ``position`` leaves."""

    position: int
    events: tuple[Recorded, ...]


def crash_points(events: tuple[Recorded, ...]) -> list[CrashPoint]:
    """Every crash point before the last delivery (the whole history is checked apart)."""
    positions = [e.delivered for e in events if e.delivered is not None]
    points = []
    for k in range(max(positions, default=-1) + 1):
        delivered = [e for e in events if e.delivered is not None and e.delivered < k]
        issued = 1 + max((e.seq for e in delivered), default=-1)
        kept: list[Recorded] = []
        for event in events:
            if event.delivered is not None and event.delivered < k:
                kept.append(event)
            elif event.seq >= issued:
                continue
            elif event.delivered is None:
                kept.append(event)  # a clock read, a random draw, a patch: recorded at issue
            elif event.kind in (history.SLEEP, history.TIMER):
                payload = {k: v for k, v in event.payload.items() if k != history.DELIVERED}
                kept.append(Recorded(event.seq, event.kind, event.label, payload))
        points.append(CrashPoint(k, tuple(kept)))
    return points


def _settled_steps(whole: tuple[Recorded, ...], prefix: tuple[Recorded, ...]) -> set[str]:
    """Labels of steps whose every outcome in the whole history is in the prefix already:
    running one of them again would run a recorded step again (SPEC 7.1)."""
    recorded = {e.seq for e in prefix if e.kind == history.STEP and e.is_final()}
    labels: dict[str, bool] = {}
    for event in whole:
        if event.kind == history.STEP:
            labels[event.label] = labels.get(event.label, True) and event.seq in recorded
    return {label for label, settled in labels.items() if settled}


def _outcome(payload: Any) -> Any:
    if isinstance(payload, dict):
        return {k: v for k, v in payload.items() if k not in (history.DELIVERED, history.PRINTED)}
    return payload


class _HistoryJournal:
    """The database as the finished history saw it: each effect gets its recorded outcome."""

    def __init__(self, events: tuple[Recorded, ...]) -> None:
        self._by_seq = {e.seq: e for e in events}
        self._events = events

    async def write(self, writes: Writes) -> None:
        del writes

    def _at(self, seq: int, kind: str, label: str) -> Any:
        event = self._by_seq.get(seq)
        if event is None or event.kind != kind or event.label != label:
            raise ReplayCheckFailed(
                f"run again, the workflow performed {kind} {label!r} at seq {seq}, which its "
                "history does not hold"
            )
        return _outcome(event.payload)

    async def transaction(
        self, seq: int, kind: str, label: str, body: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        return self._at(seq, kind, label)

    async def complete_promise(
        self, seq: int, label: str, promise_id: str, state: str, value: Any, message: str | None
    ) -> dict[str, Any]:
        kind = history.RESOLVE if state == "resolved" else history.REJECT
        return dict(self._at(seq, kind, label))

    async def consume_notification(self, seq: int, label: str) -> dict[str, Any] | None:
        payload = self._at(seq, history.NOTIFICATION, label)
        return None if payload.get("status") in ("timeout", "waiting") else dict(payload)

    async def launch_children(
        self, children: list[tuple[int, str, dict[str, Any]]]
    ) -> dict[int, dict[str, Any]]:
        return {seq: dict(self._at(seq, history.CHILD, label)) for seq, label, _ in children}

    async def peek_promise(self, promise_id: str) -> tuple[str, Any, str | None]:
        for event in self._events:
            payload = event.payload
            if event.label != promise_id or not isinstance(payload, dict):
                continue
            if event.kind == history.PROMISE and payload.get("status") in ("resolved", "rejected"):
                return payload["status"], payload.get("value"), payload.get("message")
            if event.kind in (history.RESOLVE, history.REJECT, history.PEEK):
                if payload.get("state") in ("resolved", "rejected"):
                    return payload["state"], payload.get("value"), payload.get("message")
        return "pending", None, None

    async def task_outcome(self, task_id: int) -> tuple[str, Any, Any]:
        for event in self._events:
            if event.kind == history.CHILD_RESULT and event.label == str(task_id):
                payload = event.payload
                return payload["state"], payload.get("result"), payload.get("error")
        return "running", None, None


class _InstantHost:
    """Timers fire at once (the clock jumps to them); steps run their mock or their code.

    A mock answers as it would have next: after as many calls as the history being replayed
    recorded for that step (a list of answers goes on where the first run was)."""

    def __init__(self, mocks: Mocks, events: tuple[Recorded, ...]) -> None:
        self._mocks = mocks
        self._replicas: dict[int, StepMock] = {}
        self._recorded_calls: dict[str, int] = {}
        for event in events:
            if event.kind == history.STEP and isinstance(event.payload, dict):
                calls = int(event.payload.get("attempts", 0))
                self._recorded_calls[event.label] = self._recorded_calls.get(event.label, 0) + calls
        self._now = utcnow()
        self.calls: list[str] = []

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float, *, interruptible: bool = False) -> None:
        self._now += timedelta(seconds=max(seconds, 0.0))
        await asyncio.sleep(0)

    async def admit_step(self) -> None:
        return None

    async def call_step(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        label: str,
    ) -> Any:
        self.calls.append(label)
        original = self._mocks.find(fn, label)
        if original is not None:
            mock = self._replicas.get(id(original))
            if mock is None:
                mock = original.replica(self._recorded_calls.get(label, 0))
                self._replicas[id(original)] = mock
            return await mock(args, kwargs)
        return await call(fn, args, kwargs, timeout)


@dataclass(frozen=True)
class Task:
    """What check_replay needs of a finished task."""

    task_id: int
    name: str
    workflow: Workflow
    args: list[Any]
    kwargs: dict[str, Any]
    state: str
    result: Any
    events: tuple[Recorded, ...]


async def _run(task: Task, events: tuple[Recorded, ...], mocks: Mocks) -> tuple[Any, list[str]]:
    cancelled = task.state == "cancelled" and not any(e.kind == history.CANCEL for e in events)
    spec = RunSpec(
        task_id=task.task_id,
        name=task.name,
        workflow=task.workflow.reference,
        history=events,
        default_retry=task.workflow.options.retry,
        may_suspend=False,
        cancel_requested=cancelled,  # delivered at its first wait, as a worker would
    )
    host = _InstantHost(mocks, events)
    engine = Engine(spec, _HistoryJournal(task.events), host)
    context = contextvars.copy_context()
    context.run(effects.current_engine.set, engine)
    context.run(capture.current_log.set, capture.TaskLog(engine, asyncio.get_running_loop()))
    coroutine = task.workflow.fn(Context(engine), *task.args, **task.kwargs)
    end = await asyncio.wait_for(engine.run(coroutine, context), RUN_LIMIT)
    if end.error is None:
        engine.check_history_consumed()
    await engine.close()
    await engine.drain()
    if engine.nondeterminism is not None:
        raise engine.nondeterminism
    if isinstance(end.error, ReplayCheckFailed):
        raise end.error
    return end.value if end.error is None else end.error, host.calls


async def check(task: Task, mocks: Mocks) -> int:
    """Run ``task`` from every crash point and from its whole history; the number of runs.

    Raises:
        ReplayCheckFailed: naming the crash point and what went wrong.
    """
    capture.install()
    points = [] if any(e.kind == history.RETRY for e in task.events) else crash_points(task.events)
    for point in points:
        try:
            _, calls = await _run(task, point.events, mocks)
            again = sorted(set(calls) & _settled_steps(task.events, point.events))
            if again:
                raise ReplayCheckFailed(
                    f"step(s) {again} ran again although every outcome of theirs was recorded"
                )
        except ReplayCheckFailed as error:
            raise ReplayCheckFailed(
                f"task {task.task_id}, from crash point #{point.position}: {error}"
            ) from None
        except TimeoutError:
            raise ReplayCheckFailed(
                f"task {task.task_id}: run from crash point #{point.position} did not end "
                f"within {RUN_LIMIT:g} s"
            ) from None
        except NonDeterminismError as error:
            raise ReplayCheckFailed(
                f"task {task.task_id}, from crash point #{point.position} "
                f"(after {point.position} deliveries): {error}"
            ) from error
    try:
        value, calls = await _run(task, task.events, mocks)
    except NonDeterminismError as error:
        raise ReplayCheckFailed(f"task {task.task_id}: {error}") from error
    if calls:
        raise ReplayCheckFailed(
            f"task {task.task_id}: replaying its whole history ran steps {calls} again"
        )
    if task.state == "complete":
        replayed = json.loads(serialization.dumps(value, "the replayed result"))
        if replayed != task.result:
            raise ReplayCheckFailed(
                f"task {task.task_id}: its history replays to {replayed!r}, "
                f"not the recorded result {task.result!r}"
            )
    return len(points) + 1
