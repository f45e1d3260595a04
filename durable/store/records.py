"""Records: the typed values the store takes and hands back, and how rows become them.

Plain data, apart from the store that reads and writes them (as procrastinate keeps
``jobs.py`` apart from ``manager.py``): what a claim hands a worker, a task's recorded history,
the buffered writes of a running task, a launch, a takeover round's outcome.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from durable.models import TaskInfo, TaskState


@dataclass(frozen=True)
class ClaimedTask:
    """A task a worker has just claimed, with the fencing token of that claim."""

    id: int
    name: str
    workflow: str
    args: list[Any]
    kwargs: dict[str, Any]
    lease: int
    attempts: int
    cancel_requested: bool
    has_history: bool
    created_at: datetime | None = None
    parent_id: int | None = None
    run: int = 0
    log_base: int = 0
    queue: str = "default"


@dataclass(frozen=True)
class RecordedRow:
    """One recorded event as the replay engine needs it."""

    seq: int
    kind: str
    label: str
    payload: Any


@dataclass(frozen=True)
class History:
    """What a task recorded before this run."""

    events: list[RecordedRow]
    log_lines: int
    # Finished children: id -> (state, result, error).
    children: dict[int, tuple[str, Any, Any]] = field(default_factory=dict)


@dataclass
class Batch:
    """Buffered writes of one task, sent in one round trip."""

    seqs: list[int]
    kinds: list[str]
    labels: list[str]
    payloads: list[str]
    line_nos: list[int]
    lines: list[str]

    @classmethod
    def empty(cls) -> Batch:
        """A batch with nothing in it."""
        return cls([], [], [], [], [], [])

    def __bool__(self) -> bool:
        return bool(self.seqs or self.line_nos)

    def columns(self) -> tuple[list[int], list[str], list[str], list[str], list[int], list[str]]:
        """Parameters $3..$8 of every fenced write (see queries._FENCED_WRITES)."""
        return self.seqs, self.kinds, self.labels, self.payloads, self.line_nos, self.lines


@dataclass(frozen=True)
class FencedWrite:
    """One task's write for group commit: a batch, and for a final write the outcome."""

    task_id: int
    lease: int
    batch: Batch
    state: str | None = None
    result_json: str | None = None
    error_json: str | None = None


@dataclass(frozen=True)
class WriteResult:
    """What one fenced write did: held (else nothing was written), lines added, parents woken."""

    held: bool
    lines: int
    wake_queues: tuple[str, ...] = ()


def many_columns(writes: Sequence[FencedWrite]) -> tuple[list[Any], ...]:
    """Parameters $1..$10 of RECORD_MANY and FINISH_MANY."""
    ids = [w.task_id for w in writes]
    leases = [w.lease for w in writes]
    ev_tasks: list[int] = []
    line_tasks: list[int] = []
    seqs: list[int] = []
    kinds: list[str] = []
    labels: list[str] = []
    payloads: list[str] = []
    line_nos: list[int] = []
    lines: list[str] = []
    for w in writes:
        ev_tasks.extend([w.task_id] * len(w.batch.seqs))
        seqs.extend(w.batch.seqs)
        kinds.extend(w.batch.kinds)
        labels.extend(w.batch.labels)
        payloads.extend(w.batch.payloads)
        line_tasks.extend([w.task_id] * len(w.batch.line_nos))
        line_nos.extend(w.batch.line_nos)
        lines.extend(w.batch.lines)
    return ids, leases, ev_tasks, seqs, kinds, labels, payloads, line_tasks, line_nos, lines


@dataclass(frozen=True, eq=False)
class Launch:
    """One task to create (CREATE_TASK / CREATE_TASKS)."""

    name: str
    workflow: str
    args_json: str
    kwargs_json: str
    key: str | None
    queue: str
    priority: int = 0
    concurrency_key: str | None = None
    trace_json: str | None = None  # OpenTelemetry context of the launching code

    def columns(self) -> tuple[str, str, str, str, str | None, str]:
        """Its values in the statements' column order (flow control apart: `flow_columns`)."""
        return self.name, self.workflow, self.args_json, self.kwargs_json, self.key, self.queue

    def flow_columns(self) -> tuple[int, str | None]:
        """Its priority and concurrency key (SPEC 12)."""
        return self.priority, self.concurrency_key


@dataclass(frozen=True)
class Reclaimed:
    """What one takeover round did, and when the next one could find a lease run out."""

    dead_workers: int
    resumed: int
    abandoned: int
    # Seconds until the oldest live heartbeat is lease_timeout old (None: no live worker).
    next_expiry_in: float | None


def loads(text: str | None) -> Any:
    """A JSON column read as text, decoded (None stays None)."""
    return None if text is None else json.loads(text)


def task_info(row: Any) -> TaskInfo:
    """A row of ``queries.TASK_COLUMNS`` as a TaskInfo."""
    started: datetime | None = row["started_at"]
    return TaskInfo(
        id=row["id"],
        name=row["name"],
        workflow=row["workflow"],
        state=TaskState(row["state"]),
        queue=row["queue"],
        key=row["key"],
        parent_id=row["parent_id"],
        args=loads(row["args"]),
        kwargs=loads(row["kwargs"]),
        result=loads(row["result"]),
        error=loads(row["error"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        started_at=started,
        finished_at=row["finished_at"],
        worker_id=row["worker_id"],
        detached=row["detached"],
        updated_at=row["updated_at"],
    )
