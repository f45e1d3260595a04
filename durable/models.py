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


@dataclass(frozen=True)
class Debounce:
    """Debouncing of a launch (SPEC 12), given as ``client.launch(..., debounce=...)``.

    The task starts no earlier than ``delay`` seconds after the launch. A later launch with
    the same ``key``, while that task has not started, replaces its arguments and moves its
    start to ``delay`` seconds from then, but never later than ``max_delay`` seconds after the
    first launch (None: no cap). The later launch returns the same task.

    Args:
        key: the debounce key; launches sharing it are folded into one task.
        delay: seconds to wait after the latest launch.
        max_delay: seconds after the first launch by which the task starts at the latest.
    """

    key: str
    delay: float
    max_delay: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise TypeError("a debounce key must be a non-empty string")
        for name in ("delay", "max_delay"):
            value = getattr(self, name)
            if value is None and name == "max_delay":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"debounce {name} must be a number of seconds >= 0, not {value!r}")
        if self.max_delay is not None and self.max_delay < self.delay:
            raise ValueError("debounce max_delay must not be less than delay")


@dataclass(frozen=True)
class QueueInfo:
    """A queue's flow control (SPEC 12) and the unfinished tasks it holds."""

    name: str
    concurrency: int | None
    key_concurrency: int | None
    rate: tuple[int, float] | None
    paused: bool
    pending: int
    running: int
    suspended: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "concurrency": self.concurrency,
            "key_concurrency": self.key_concurrency,
            "rate": None if self.rate is None else list(self.rate),
            "paused": self.paused,
            "pending": self.pending,
            "running": self.running,
            "suspended": self.suspended,
        }


@dataclass(frozen=True)
class ScheduleInfo:
    """A cron schedule (SPEC 12) and when it fires next."""

    name: str
    workflow: str
    cron: str
    timezone: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    overlap: str
    catch_up: float
    paused: bool
    next_at: datetime
    last_task_id: int | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO 8601)."""
        return {
            "name": self.name,
            "workflow": self.workflow,
            "cron": self.cron,
            "timezone": self.timezone,
            "args": self.args,
            "kwargs": self.kwargs,
            "queue": self.queue,
            "overlap": self.overlap,
            "catch_up": self.catch_up,
            "paused": self.paused,
            "next_at": self.next_at.isoformat(),
            "last_task_id": self.last_task_id,
        }
