"""Store: the one class that executes ``queries.py``.

Typed methods, one round trip each (the hot writes of running tasks share theirs: see
`durable.store.group_commit`). asyncpg's connection errors become
``DatabaseUnavailable`` here; nothing above the store sees asyncpg exceptions. After a write
commits, the store queues the wake-ups that announce it (`durable.store.wakeups`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from durable.errors import DurableError, SchemaOutdated, TaskFinished, TaskNotFound
from durable.models import (
    Event,
    LogLine,
    Notification,
    PromiseState,
    TaskInfo,
    TaskState,
    WorkerInfo,
)
from durable.store import queries
from durable.store.group_commit import GroupCommit
from durable.store.pool import CONNECTION_ERRORS, create_pool, unavailable
from durable.store.revision import SCHEMA_REVISION
from durable.store.wakeups import (
    CANCEL_CHANNEL,
    PROMISES_CHANNEL,
    TASK_EVENTS_CHANNEL,
    TASKS_CHANNEL,
    TIMERS_CHANNEL,
    Wakeup,
    Wakeups,
)


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


def _many_columns(writes: Sequence[FencedWrite]) -> tuple[list[Any], ...]:
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

    def columns(self) -> tuple[str, str, str, str, str | None, str]:
        """Its values in the statements' column order."""
        return self.name, self.workflow, self.args_json, self.kwargs_json, self.key, self.queue


@dataclass(frozen=True)
class Reclaimed:
    """What one takeover round did, and when the next one could find a lease run out."""

    dead_workers: int
    resumed: int
    abandoned: int
    # Seconds until the oldest live heartbeat is lease_timeout old (None: no live worker).
    next_expiry_in: float | None


class LeaseLost(DurableError):
    """This worker no longer holds the task: its writes were refused."""


class Store:
    """Typed access to the durable schema over an asyncpg pool."""

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self.pool = pool
        self.wakeups = Wakeups(pool)
        # The hot writes of running tasks share statements and commits (group_commit.py).
        self._records: GroupCommit[FencedWrite] = GroupCommit(
            self._send_records, key=lambda w: w.task_id
        )
        self._finishes: GroupCommit[FencedWrite] = GroupCommit(
            self._send_finishes, key=lambda w: w.task_id
        )
        # Launches without a key never conflict; two with the same key go one after the other.
        self._launches: GroupCommit[Launch] = GroupCommit(
            self._send_launches, key=lambda launch: launch.key or id(launch)
        )

    @classmethod
    async def open(
        cls, url: str, *, max_size: int = 10, check_schema: bool = True, migrate: bool = False
    ) -> Store:
        """Open a pool; with ``check_schema`` refuse a database that is not migrated to head.

        With ``migrate`` (the embedded default, a database durable owns), an outdated schema
        is upgraded instead of refused.
        """
        pool = await create_pool(url, max_size=max_size)
        store = cls(url, pool)
        try:
            if check_schema:
                try:
                    await store.check_schema()
                except SchemaOutdated:
                    if not migrate:
                        raise
                    from durable.store import migrate as migrations

                    await migrations.upgrade(url)
                    await store.check_schema()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        """Send the wake-ups still queued, then close the pool (waits for connections in use)."""
        await self.wakeups.flush()
        await self.pool.close()

    def _wake_tasks(self, queue: str | None) -> None:
        if queue is not None:
            self.wakeups.send(TASKS_CHANNEL, queue)

    def _told_lines(self, task_id: int, lines: int) -> None:
        if lines:
            self.wakeups.send(TASK_EVENTS_CHANNEL, f"{task_id}:log")

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        try:
            return list(await self.pool.fetch(query, *args))
        except CONNECTION_ERRORS as error:
            raise unavailable(self.url, error) from error

    async def _fetchrow(self, query: str, *args: Any) -> Any:
        try:
            return await self.pool.fetchrow(query, *args)
        except CONNECTION_ERRORS as error:
            raise unavailable(self.url, error) from error

    # -- schema ------------------------------------------------------------------------------

    async def check_schema(self) -> None:
        """Raise SchemaOutdated unless the database is at this code's schema revision."""
        try:
            row = await self._fetchrow(queries.SCHEMA_REVISION)
        except asyncpg.exceptions.UndefinedTableError:
            row = None
        current = None if row is None else row["version_num"]
        if current == SCHEMA_REVISION:
            return
        if current is None:
            raise SchemaOutdated("the database has no durable schema: run `durable migrate`")
        if current < SCHEMA_REVISION:
            raise SchemaOutdated(
                f"the database schema ({current}) is older than this code ({SCHEMA_REVISION}): "
                "run `durable migrate`"
            )
        raise SchemaOutdated(
            f"the database schema ({current}) is newer than this code ({SCHEMA_REVISION}): "
            "upgrade durable-engine"
        )

    # -- tasks -------------------------------------------------------------------------------

    async def create_task(
        self,
        *,
        name: str,
        workflow: str,
        args_json: str,
        kwargs_json: str,
        key: str | None,
        queue: str,
    ) -> tuple[int, str, str, bool]:
        """Insert a task (or find the one with ``key``): (id, name, workflow, created).

        Concurrent launches share statements (group commit), as running tasks' writes do.
        """
        launch = Launch(name, workflow, args_json, kwargs_json, key, queue)
        for _ in range(3):
            row: tuple[int, str, str, bool] | None = await self._launches.submit(launch)
            if row is not None:
                return row
        raise DurableError(f"could not create or find the task with key {key!r}")

    async def _send_launches(
        self, launches: list[Launch]
    ) -> list[tuple[int, str, str, bool] | None]:
        if len(launches) == 1:
            [one] = launches
            row = await self._fetchrow(queries.CREATE_TASK, *one.columns(), None, False)
            rows = [] if row is None else [row]
        else:
            columns = zip(*(launch.columns() for launch in launches), strict=True)
            rows = await self._fetch(queries.CREATE_TASKS, *(list(c) for c in columns))
        results: list[tuple[int, str, str, bool] | None] = [None] * len(launches)
        for index, row in enumerate(rows):
            if row["id"] is None:
                continue  # a concurrent launch with this key is not visible yet: retried
            if row["created"]:
                self._wake_tasks(row["queue"])
            results[index] = (row["id"], row["name"], row["workflow"], row["created"])
        return results

    async def fork_task(self, task_id: int, at: int, name: str | None) -> tuple[int, str, str]:
        """A new task with the events of ``task_id`` before seq ``at``: (id, name, workflow)."""
        row = await self._fetchrow(queries.FORK_TASK, task_id, at, name)
        if row is None:
            raise TaskNotFound(f"no task with id {task_id}")
        self._wake_tasks(row["queue"])
        return row["id"], row["name"], row["workflow"]

    async def get_task(self, task_id: int) -> TaskInfo:
        """The task with this id, or TaskNotFound."""
        row = await self._fetchrow(queries.GET_TASK, task_id)
        if row is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return _task_info(row)

    async def task_state(self, task_id: int) -> TaskState:
        """Only the state of a task, or TaskNotFound."""
        row = await self._fetchrow(queries.TASK_STATE, task_id)
        if row is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return TaskState(row["state"])

    async def list_tasks(
        self, *, state: str | None, workflow: str | None, limit: int
    ) -> list[TaskInfo]:
        """Tasks newest first, optionally filtered."""
        rows = await self._fetch(queries.LIST_TASKS, state, workflow, limit)
        return [_task_info(row) for row in rows]

    async def list_events(self, task_id: int) -> list[Event]:
        """A task's recorded events in seq order."""
        rows = await self._fetch(queries.LIST_EVENTS, task_id)
        return [
            Event(
                task_id=row["task_id"],
                seq=row["seq"],
                kind=row["kind"],
                label=row["label"],
                payload=_loads(row["payload"]),
                at=row["at"],
            )
            for row in rows
        ]

    async def read_logs(self, task_id: int, after_line_no: int) -> list[LogLine]:
        """Log lines with a number greater than ``after_line_no``, in order."""
        rows = await self._fetch(queries.READ_LOGS, task_id, after_line_no)
        return [LogLine(row["task_id"], row["line_no"], row["line"], row["at"]) for row in rows]

    async def cancel_task(self, task_id: int) -> tuple[TaskState, TaskState]:
        """Request cancellation: (state before, state after)."""
        row = await self._fetchrow(queries.CANCEL_TASK, task_id)
        if row is None:
            raise TaskNotFound(f"no task with id {task_id}")
        self._wake_cancelled([row])
        return TaskState(row["before"]), TaskState(row["after"])

    async def cancel_children(self, parent_id: int) -> int:
        """Cancel a task's running children that were not launched detached; how many."""
        rows = await self._fetch(queries.CANCEL_CHILDREN, parent_id)
        self._wake_cancelled(rows)
        return len(rows)

    def _wake_cancelled(self, rows: Sequence[Any]) -> None:
        for row in rows:
            if row["flagged"]:
                self.wakeups.send(CANCEL_CHANNEL, str(row["id"]))
            if row["ended"]:
                self.wakeups.send(TASK_EVENTS_CHANNEL, f"{row['id']}:final")
            self._wake_tasks(row["wake_queue"])

    async def retry_task(self, task_id: int) -> tuple[TaskState, TaskState]:
        """Put a failed or cancelled task back to pending: (state before, state after)."""
        row = await self._fetchrow(queries.RETRY_TASK, task_id)
        if row is None:
            raise TaskNotFound(f"no task with id {task_id}")
        self._wake_tasks(row["wake_queue"])
        return TaskState(row["before"]), TaskState(row["after"])

    # -- the worker's side -------------------------------------------------------------------

    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, *, timer_lead: float = 0.0
    ) -> list[ClaimedTask]:
        """Claim up to ``limit`` runnable tasks of ``queues`` for ``worker_id``.

        Suspended tasks whose timer is due within ``timer_lead`` seconds count as runnable.
        """
        rows = await self._fetch(queries.CLAIM_TASKS, list(queues), limit, worker_id, timer_lead)
        return [
            ClaimedTask(
                id=row["id"],
                name=row["name"],
                workflow=row["workflow"],
                args=json.loads(row["args"]),
                kwargs=json.loads(row["kwargs"]),
                lease=row["lease"],
                attempts=row["attempts"],
                cancel_requested=row["cancel_requested"],
                has_history=row["has_history"],
                created_at=row["created_at"],
                parent_id=row["parent_id"],
                run=row["run"],
                log_base=row["log_base"],
            )
            for row in sorted(rows, key=lambda r: r["id"])
        ]

    async def next_wake(self, queues: Sequence[str]) -> datetime | None:
        """The earliest timer among suspended tasks of ``queues``."""
        row = await self._fetchrow(queries.NEXT_WAKE, list(queues))
        return None if row is None else row["wake_at"]

    async def load_history(self, task_id: int, log_base: int = 0) -> History:
        """Everything a task recorded before: events and the count of log lines."""
        row = await self._fetchrow(queries.LOAD_HISTORY, task_id, log_base)
        events = [RecordedRow(s, k, lbl, p) for s, k, lbl, p in json.loads(row["events"])]
        children = {i: (st, res, err) for i, st, res, err in json.loads(row["children"])}
        return History(events=events, log_lines=row["log_lines"], children=children)

    async def record(self, task_id: int, lease: int, batch: Batch) -> None:
        """Write a batch of events and log lines, fenced; LeaseLost if the task is not held."""
        result = _checked(await self._records.submit(FencedWrite(task_id, lease, batch)))
        if not result.held:
            raise LeaseLost(f"task {task_id} is no longer held with lease {lease}")
        self._told_lines(task_id, result.lines)

    async def finish(
        self,
        task_id: int,
        lease: int,
        batch: Batch,
        *,
        state: TaskState,
        result_json: str | None,
        error_json: str | None,
    ) -> None:
        """Write the last batch and the final state, fenced; LeaseLost if not held.

        A child also counts itself off its parent's wait, in the same statement.
        """
        write = FencedWrite(task_id, lease, batch, state.value, result_json, error_json)
        result = _checked(await self._finishes.submit(write))
        if not result.held:
            raise LeaseLost(f"task {task_id} is no longer held with lease {lease}")
        self.wakeups.send(TASK_EVENTS_CHANNEL, f"{task_id}:final")
        for queue in result.wake_queues:
            self._wake_tasks(queue)

    async def _send_records(self, writes: list[FencedWrite]) -> list[WriteResult | Exception]:
        if len(writes) == 1:
            [w] = writes
            row = await self._fetchrow(queries.RECORD, w.task_id, w.lease, *w.batch.columns())
            return [WriteResult(row is not None and row["held"] > 0, row["lines"] if row else 0)]
        try:
            rows = await self._fetch(queries.RECORD_MANY, *_many_columns(writes))
        except asyncpg.PostgresError:
            return await self._one_by_one(self._send_records, writes)
        return [WriteResult(row["held"], row["lines"]) for row in rows]

    async def _send_finishes(self, writes: list[FencedWrite]) -> list[WriteResult | Exception]:
        if len(writes) == 1:
            [w] = writes
            args = (w.task_id, w.lease, *w.batch.columns(), w.state, w.result_json, w.error_json)
            row = await self._fetchrow(queries.FINISH, *args)
            if row is None or row["held"] == 0:
                return [WriteResult(False, 0)]
            queues = () if row["wake_queue"] is None else (row["wake_queue"],)
            return [WriteResult(True, row["lines"], queues)]
        outcomes = (
            [w.state for w in writes],
            [w.result_json for w in writes],
            [w.error_json for w in writes],
        )
        try:
            rows = await self._fetch(queries.FINISH_MANY, *_many_columns(writes), *outcomes)
        except asyncpg.PostgresError:
            return await self._one_by_one(self._send_finishes, writes)
        return [WriteResult(row["held"], row["lines"], tuple(row["wake_queues"])) for row in rows]

    @staticmethod
    async def _one_by_one(
        send: Callable[[list[FencedWrite]], Awaitable[list[WriteResult | Exception]]],
        writes: list[FencedWrite],
    ) -> list[WriteResult | Exception]:
        """A shared statement failed (a deadlock with a takeover, say): each write on its own,
        so that one task's trouble is that task's alone."""
        results: list[WriteResult | Exception] = []
        for write in writes:
            try:
                results.extend(await send([write]))
            except Exception as error:  # that write's caller raises it (see _checked)
                results.append(error)
        return results

    async def suspend(
        self,
        task_id: int,
        lease: int,
        batch: Batch,
        *,
        wake_at: datetime | None,
        promises: Sequence[str] = (),
        notification: bool = False,
        children: Sequence[int] = (),
    ) -> bool:
        """Write the last batch and suspend the task, fenced; True if it stayed suspended.

        False means a condition it waits for was already met: the task is pending again.
        """
        waits = bool(promises or notification or children)
        waiting_for = json.dumps(
            {"promises": list(promises), "notification": notification, "children": list(children)}
            if waits
            else {"timer": True}
        )
        args = (
            *(task_id, lease, *batch.columns()),
            *(wake_at, list(promises), notification, waiting_for, list(children)),
        )
        try:
            if not waits:
                row = await self.pool.fetchrow(queries.SUSPEND, *args)
            else:
                async with self.pool.acquire() as conn, conn.transaction():
                    if await conn.fetchrow(queries.LOCK_HELD_TASK, task_id, lease) is None:
                        raise LeaseLost(f"task {task_id} is no longer held with lease {lease}")
                    if promises:
                        await conn.execute(queries.ENSURE_PROMISES, list(promises))
                        await conn.fetch(queries.LOCK_PROMISES, list(promises))
                    row = await conn.fetchrow(queries.SUSPEND, *args)
        except CONNECTION_ERRORS as error:
            raise unavailable(self.url, error) from error
        if row is None or row["held"] == 0:
            raise LeaseLost(f"task {task_id} is no longer held with lease {lease}")
        self._told_lines(task_id, row["lines"])
        if row["state"] == TaskState.PENDING.value:
            self._wake_tasks(row["queue"])
        else:
            self.wakeups.send(TASK_EVENTS_CHANNEL, f"{task_id}:suspended")
            if row["wake_at"] is not None:
                self.wakeups.send(TIMERS_CHANNEL, row["queue"])
        return True

    async def continue_as_new(
        self,
        task_id: int,
        lease: int,
        batch: Batch,
        *,
        log_base: int,
        args_json: str,
        kwargs_json: str,
    ) -> None:
        """End this generation and queue the next one with a fresh event log, fenced."""
        row = await self._fetchrow(
            queries.CONTINUE_AS_NEW,
            task_id,
            lease,
            *batch.columns(),
            log_base,
            args_json,
            kwargs_json,
        )
        if row is None or row["held"] == 0:
            raise LeaseLost(f"task {task_id} is no longer held with lease {lease}")
        self._told_lines(task_id, row["lines"])
        self._wake_tasks(row["queue"])

    # -- children ----------------------------------------------------------------------------

    async def launch_children(
        self, task_id: int, lease: int, children: Sequence[tuple[int, str, dict[str, Any]]]
    ) -> dict[int, Any]:
        """Create children and record their launches (seq, kind child) in one transaction.

        ``children`` are (seq, label, spec) with spec's args/kwargs as JSON text. Returns the
        payload recorded at each seq (``{"task_id", "name", "workflow", "created"}``).
        LeaseLost if the task is not held.
        """
        seqs = [seq for seq, _, _ in children]
        queues: set[str] = set()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(queries.BEGIN_RECORDING, task_id, lease, seqs)
                if row is None:
                    raise LeaseLost(f"task {task_id} is no longer held with lease {lease}")
                payloads: dict[int, Any] = dict(json.loads(row["recorded"]))
                todo = [child for child in children if child[0] not in payloads]
                if todo:
                    specs = [spec for _, _, spec in todo]
                    rows = await conn.fetch(
                        queries.CREATE_CHILDREN,
                        *([spec[k] for spec in specs] for k in _CHILD_COLUMNS),
                        task_id,
                    )
                    batch = Batch.empty()
                    queues.update(row["queue"] for row in rows if row["created"])
                    for (seq, label, _), created in zip(todo, rows, strict=True):
                        payload = {
                            "task_id": created["id"],
                            "name": created["name"],
                            "workflow": created["workflow"],
                            "created": created["created"],
                        }
                        payloads[seq] = payload
                        batch.seqs.append(seq)
                        batch.kinds.append("child")
                        batch.labels.append(label)
                        batch.payloads.append(json.dumps(payload))
                    await conn.fetchrow(queries.RECORD, task_id, lease, *batch.columns())
        except CONNECTION_ERRORS as error:
            raise unavailable(self.url, error) from error
        for queue in sorted(queues):
            self._wake_tasks(queue)
        return payloads

    async def task_outcome(self, task_id: int) -> tuple[str, Any, Any]:
        """(state, result, error) of a task."""
        row = await self._fetchrow(queries.TASK_OUTCOME, task_id)
        if row is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return row["state"], _loads(row["result"]), _loads(row["error"])

    # -- promises and notifications ----------------------------------------------------------

    async def complete_promise(
        self, promise_id: str, state: str, value_json: str | None, message: str | None
    ) -> PromiseState:
        """Resolve or reject a promise (at most once); the state that won."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                won, wakeups = await self.complete_promise_on(
                    conn, promise_id, state, value_json, message
                )
        except CONNECTION_ERRORS as error:
            raise unavailable(self.url, error) from error
        self.wakeups.send_all(wakeups)
        return won

    @staticmethod
    async def complete_promise_on(
        conn: asyncpg.Connection,
        promise_id: str,
        state: str,
        value_json: str | None,
        message: str | None,
    ) -> tuple[PromiseState, list[Wakeup]]:
        """The two statements of a completion, inside the caller's transaction.

        Returns the state that won and the wake-ups to send once the transaction commits.
        """
        await conn.fetchrow(queries.COMPLETE_PROMISE, promise_id, state, value_json, message)
        row = await conn.fetchrow(queries.WAKE_PROMISE_WAITERS, promise_id)
        wakeups = [(TASKS_CHANNEL, queue) for queue in row["queues"]]
        wakeups.append((PROMISES_CHANNEL, promise_id))
        return PromiseState(row["state"], _loads(row["value"]), row["message"]), wakeups

    async def peek_promise(self, promise_id: str) -> PromiseState:
        """A promise's state; one nobody has touched yet is pending."""
        row = await self._fetchrow(queries.PEEK_PROMISE, promise_id)
        if row is None:
            return PromiseState("pending")
        return PromiseState(row["state"], _loads(row["value"]), row["message"])

    async def send_notification(self, task_id: int, event: str, data_json: str) -> None:
        """Queue a notification for a task and wake it if it waits for one."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(queries.LOCK_TASK, task_id)
                if row is None:
                    raise TaskNotFound(f"no task with id {task_id}")
                if TaskState(row["state"]).is_final:
                    raise TaskFinished(f"task is finished: task {task_id} is {row['state']}")
                sent = await conn.fetchrow(queries.SEND_NOTIFICATION, task_id, event, data_json)
        except CONNECTION_ERRORS as error:
            raise unavailable(self.url, error) from error
        self._wake_tasks(sent["wake_queue"])

    @staticmethod
    async def consume_notification_on(
        conn: asyncpg.Connection, task_id: int, seq: int
    ) -> Notification | None:
        """Take the oldest unread notification of a task, inside the caller's transaction."""
        row = await conn.fetchrow(queries.CONSUME_NOTIFICATION, task_id, seq)
        if row is None:
            return None
        return Notification(row["event"], _loads(row["data"]), row["created_at"])

    async def in_transaction(
        self,
        task_id: int,
        lease: int,
        seq: int,
        body: Callable[[asyncpg.Connection], Awaitable[Batch]],
    ) -> str | None:
        """Run ``body`` in one transaction that is fenced and records what ``body`` returns.

        Returns None once committed, or the payload (JSON text) already recorded at ``seq``,
        in which case ``body`` is not run. LeaseLost if the task is not held.
        """
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(queries.TRANSACTION_BEGIN, task_id, lease, seq)
                if row is None:
                    raise LeaseLost(f"task {task_id} is no longer held with lease {lease}")
                if row["recorded"] is not None:
                    return str(row["recorded"])
                batch = await body(conn)
                row = await conn.fetchrow(queries.RECORD, task_id, lease, *batch.columns())
        except CONNECTION_ERRORS as error:
            raise unavailable(self.url, error) from error
        self._told_lines(task_id, row["lines"])
        return None

    async def cancel_requested(self, task_ids: Sequence[int]) -> list[int]:
        """Which of these running tasks have a cancellation pending."""
        rows = await self._fetch(queries.CANCEL_REQUESTED, list(task_ids))
        return [row["id"] for row in rows]

    # -- workers -----------------------------------------------------------------------------

    async def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        queues: Sequence[str],
        concurrency: int,
        lease_timeout: float,
        local_identity: str | None = None,
    ) -> None:
        """Insert this worker's row (heartbeat now)."""
        await self._fetch(
            queries.REGISTER_WORKER,
            worker_id,
            host,
            pid,
            list(queues),
            concurrency,
            lease_timeout,
            local_identity,
        )

    async def heartbeat(self, worker_id: str) -> bool:
        """Refresh the heartbeat; False if the row is gone (we were declared dead)."""
        row = await self._fetchrow(queries.HEARTBEAT, worker_id)
        return row is not None

    async def release_tasks(self, worker_id: str) -> int:
        """Hand every task this worker holds back to pending; returns how many."""
        row = await self._fetchrow(queries.RELEASE_TASKS, worker_id)
        for queue in row["queues"]:
            self._wake_tasks(queue)
        return int(row["released"])

    async def release_unknown(self, worker_id: str, known: Sequence[int]) -> int:
        """Hand back tasks held by ``worker_id`` other than ``known``; returns how many."""
        row = await self._fetchrow(queries.RELEASE_UNKNOWN, worker_id, list(known))
        for queue in row["queues"]:
            self._wake_tasks(queue)
        return int(row["released"])

    async def reclaim(self, max_attempts: int, exited: Sequence[str] = ()) -> Reclaimed:
        """Take back the tasks of dead workers: silent past the lease timeout each registered,
        or ``exited`` (ids of workers known to have exited, whatever their lease says). See
        `Reclaimed`."""
        try:
            row = await self._fetchrow(queries.RECLAIM_TASKS, max_attempts, list(exited))
        except asyncpg.exceptions.DeadlockDetectedError:
            return Reclaimed(0, 0, 0, None)  # rolled back; the next heartbeat takes them over
        for queue in row["queues"]:
            self._wake_tasks(queue)
        for task_id in row["abandoned_ids"]:
            self.wakeups.send(TASK_EVENTS_CHANNEL, f"{task_id}:final")
        return Reclaimed(
            int(row["dead"]), int(row["resumed"]), int(row["abandoned"]), row["next_expiry_in"]
        )

    async def local_workers(self, local_identity: str, worker_id: str) -> list[tuple[str, int]]:
        """(id, pid) of the other workers registered with this ``local_identity``."""
        rows = await self._fetch(queries.LOCAL_WORKERS, local_identity, worker_id)
        return [(row["id"], row["pid"]) for row in rows]

    async def deregister_worker(self, worker_id: str) -> None:
        """Remove this worker's row."""
        await self._fetch(queries.DEREGISTER_WORKER, worker_id)

    async def list_workers(self) -> list[WorkerInfo]:
        """Registered workers with heartbeat age and tasks held."""
        rows = await self._fetch(queries.LIST_WORKERS)
        return [
            WorkerInfo(
                id=row["id"],
                host=row["host"],
                pid=row["pid"],
                queues=list(row["queues"]),
                concurrency=row["concurrency"],
                started_at=row["started_at"],
                heartbeat_at=row["heartbeat_at"],
                heartbeat_age=row["heartbeat_age"],
                tasks_held=row["tasks_held"],
            )
            for row in rows
        ]


# The columns of CREATE_CHILDREN, in order, as keys of a child spec.
_CHILD_COLUMNS = ("name", "workflow", "args", "kwargs", "key", "queue", "detached")


def _checked(result: WriteResult | Exception) -> WriteResult:
    """A group commit's result for one write, or the error of that write alone."""
    if isinstance(result, Exception):
        raise result
    return result


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _task_info(row: Any) -> TaskInfo:
    started: datetime | None = row["started_at"]
    return TaskInfo(
        id=row["id"],
        name=row["name"],
        workflow=row["workflow"],
        state=TaskState(row["state"]),
        queue=row["queue"],
        key=row["key"],
        parent_id=row["parent_id"],
        args=_loads(row["args"]),
        kwargs=_loads(row["kwargs"]),
        result=_loads(row["result"]),
        error=_loads(row["error"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        started_at=started,
        finished_at=row["finished_at"],
        worker_id=row["worker_id"],
        detached=row["detached"],
        updated_at=row["updated_at"],
    )
