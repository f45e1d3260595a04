"""Plain data that crosses the public API: task states, task info, events, promises."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class TaskState(enum.StrEnum):
    """A task's state; compares equal to its lower-case name."""

    PENDING = "pending"
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        """True for complete, failed and cancelled."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({TaskState.COMPLETE, TaskState.FAILED, TaskState.CANCELLED})


class EventKind(enum.StrEnum):
    """What a recorded event is the outcome of (the ``kind`` column of the event log)."""

    STEP = "step"
    TRANSACTION = "transaction"
    SLEEP = "sleep"
    # A timer of asyncio's own inside a workflow (asyncio.timeout, wait_for, sleep).
    TIMER = "timer"
    NOW = "now"
    RANDOM = "random"
    UUID = "uuid"
    CHILD = "child"
    CHILD_RESULT = "child_result"
    PROMISE = "promise"
    RESOLVE = "resolve"
    REJECT = "reject"
    PEEK = "peek"
    NOTIFICATION = "notification"
    PATCH = "patch"
    # Where a cancellation landed, and where `durable retry` resumed a task.
    CANCEL = "cancel"
    RETRY = "retry"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TaskInfo:
    """A task as stored; ``--json`` outputs of the CLI use the same keys."""

    id: int
    name: str
    workflow: str
    state: TaskState
    queue: str
    key: str | None
    parent_id: int | None
    args: list[Any]
    kwargs: dict[str, Any]
    result: Any
    error: dict[str, Any] | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None = None  # the worker holding it while `running`
    detached: bool = False  # launched with ``ctx.start(..., detached=True)``
    updated_at: datetime | None = None  # its last change of state

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        return {
            "id": self.id,
            "name": self.name,
            "workflow": self.workflow,
            "state": self.state.value,
            "queue": self.queue,
            "key": self.key,
            "parent_id": self.parent_id,
            "args": self.args,
            "kwargs": self.kwargs,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "worker_id": self.worker_id,
            "detached": self.detached,
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class TaskHandle:
    """What ``Client.launch`` returns: the task's id, and whether this call created it."""

    id: int
    name: str
    workflow: str
    created: bool


@dataclass(frozen=True)
class Event:
    """One recorded effect of a task."""

    task_id: int
    seq: int
    kind: str
    label: str
    payload: Any
    at: datetime

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "task_id": self.task_id,
            "seq": self.seq,
            "kind": self.kind,
            "label": self.label,
            "payload": self.payload,
            "at": _iso(self.at),
        }


@dataclass(frozen=True)
class LogLine:
    """One line of a task's log."""

    task_id: int
    line_no: int
    line: str
    at: datetime


@dataclass(frozen=True)
class WorkerInfo:
    """A registered worker and its heartbeat."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age: float
    tasks_held: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "queues": self.queues,
            "concurrency": self.concurrency,
            "started_at": _iso(self.started_at),
            "heartbeat_at": _iso(self.heartbeat_at),
            "heartbeat_age": round(self.heartbeat_age, 3),
            "tasks_held": self.tasks_held,
        }


@dataclass(frozen=True)
class PromiseState:
    """A durable promise: ``state`` is pending, resolved or rejected."""

    state: str
    value: Any = None
    message: str | None = None


@dataclass(frozen=True)
class Notification:
    """A notification delivered to a task's mailbox."""

    event: str
    data: Any
    created_at: datetime


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
