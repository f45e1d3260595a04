"""The store's face for running tasks: claims, history, and the fenced writes of a run.

Every write made for a running task is fenced by the lease it was claimed with (see
`durable.store.queries`): a worker that lost the task writes nothing and gets LeaseLost. The
hot writes (a step's record, a final state) go through group commit
(`durable.store.group_commit`); the rest are one statement, or one fenced transaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from durable.models import TaskState
from durable.store import queries
from durable.store.access import Fence, LeaseLost, StoreAccess
from durable.store.group_commit import GroupCommit
from durable.store.pool import CONNECTION_ERRORS
from durable.store.records import (
    Batch,
    ClaimedTask,
    FencedWrite,
    History,
    RecordedRow,
    WriteResult,
    many_columns,
)
from durable.store.wakeups import TASK_EVENTS_CHANNEL, TIMERS_CHANNEL

# The columns of CREATE_CHILDREN, in order, as keys of a child spec.
_CHILD_COLUMNS = ("name", "workflow", "args", "kwargs", "key", "queue", "detached")


class Runs(StoreAccess):
    """What a worker does with the tasks it claims."""

    _records: GroupCommit[FencedWrite]
    _finishes: GroupCommit[FencedWrite]

    # -- claiming --------------------------------------------------------------------------------

    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, *, timer_lead: float = 0.0
    ) -> list[ClaimedTask]:
        """Claim up to ``limit`` runnable tasks of ``queues`` for ``worker_id``.

        Suspended tasks whose timer is due within ``timer_lead`` seconds count as runnable.
        """
        rows = await self._fetch(queries.CLAIM_TASKS, list(queues), limit, worker_id, timer_lead)
        return claimed_tasks(rows)

    async def next_wake(self, queues: Sequence[str], timer_lead: float = 0.0) -> datetime | None:
        """The earliest timer among suspended tasks of ``queues``, or debounced start (reported
        ``timer_lead`` late: it cannot be claimed early)."""
        row = await self._fetchrow(queries.NEXT_WAKE, list(queues), timer_lead)
        return None if row is None else row["wake_at"]

    async def load_history(self, task_id: int, log_base: int = 0) -> History:
        """Everything a task recorded before: events and the count of log lines."""
        row = await self._fetchrow(queries.LOAD_HISTORY, task_id, log_base)
        events = [RecordedRow(s, k, lbl, p) for s, k, lbl, p in json.loads(row["events"])]
        children = {i: (st, res, err) for i, st, res, err in json.loads(row["children"])}
        return History(events=events, log_lines=row["log_lines"], children=children)

    async def cancel_requested(self, task_ids: Sequence[int]) -> list[int]:
        """Which of these running tasks have a cancellation pending."""
        rows = await self._fetch(queries.CANCEL_REQUESTED, list(task_ids))
        return [row["id"] for row in rows]

    # -- fenced writes ---------------------------------------------------------------------------

    async def record(self, task_id: int, lease: int, batch: Batch) -> None:
        """Write a batch of events and log lines, fenced; LeaseLost if the task is not held."""
        result = _checked(await self._records.submit(FencedWrite(task_id, lease, batch)))
        if not result.held:
            raise LeaseLost.of(task_id, lease)
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
            raise LeaseLost.of(task_id, lease)
        self.wakeups.send(TASK_EVENTS_CHANNEL, f"{task_id}:final")
        for queue in result.wake_queues:
            self._wake_tasks(queue)

    async def _send_records(self, writes: list[FencedWrite]) -> list[WriteResult | Exception]:
        if len(writes) == 1:
            [w] = writes
            row = await self._fetchrow(queries.RECORD, w.task_id, w.lease, *w.batch.columns())
            return [WriteResult(row is not None and row["held"] > 0, row["lines"] if row else 0)]
        try:
            rows = await self._fetch(queries.RECORD_MANY, *many_columns(writes))
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
            rows = await self._fetch(queries.FINISH_MANY, *many_columns(writes), *outcomes)
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
        if not waits:
            row = await self._fetchrow(queries.SUSPEND, *args)
        else:
            async with self._transaction(Fence(task_id, lease)) as tx:
                if promises:
                    await tx.conn.execute(queries.ENSURE_PROMISES, list(promises))
                    await tx.conn.fetch(queries.LOCK_PROMISES, list(promises))
                row = await tx.conn.fetchrow(queries.SUSPEND, *args)
        if row is None or row["held"] == 0:
            raise LeaseLost.of(task_id, lease)
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
            raise LeaseLost.of(task_id, lease)
        self._told_lines(task_id, row["lines"])
        self._wake_tasks(row["queue"])

    async def in_transaction(
        self,
        task_id: int,
        lease: int,
        seq: int,
        body: Callable[[asyncpg.Connection], Awaitable[Batch]],
    ) -> str | None:
        """Run ``body`` in one transaction that is fenced and records what ``body`` returns.

        Returns None once committed, or the payload (JSON text) already recorded at ``seq``,
        in which case ``body`` is not run. LeaseLost if the task is not held. What ``body``
        raises (after a rollback) is its own error, even a ``TimeoutError`` or an ``OSError``,
        unless its connection died under it: only then is it DatabaseUnavailable (retried).
        """
        failure: BaseException | None = None
        fence = Fence(task_id, lease, queries.TRANSACTION_BEGIN, (seq,))
        try:
            async with self._transaction(fence) as tx:
                if tx.fenced["recorded"] is not None:
                    return str(tx.fenced["recorded"])
                try:
                    batch = await body(tx.conn)
                except CONNECTION_ERRORS as error:
                    if tx.conn.is_closed():
                        raise
                    # The user's own error, that the block would take for an outage.
                    failure = error
                    raise _BodyFailed from None
                row = await tx.conn.fetchrow(queries.RECORD, task_id, lease, *batch.columns())
        except _BodyFailed:
            pass
        if failure is not None:
            raise failure  # outside the except: its context stays its own
        self._told_lines(task_id, row["lines"])
        return None

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
        fence = Fence(task_id, lease, queries.BEGIN_RECORDING, (seqs,))
        async with self._transaction(fence) as tx:
            payloads: dict[int, Any] = dict(json.loads(tx.fenced["recorded"]))
            todo = [child for child in children if child[0] not in payloads]
            if todo:
                specs = [spec for _, _, spec in todo]
                rows = await tx.conn.fetch(
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
                await tx.conn.fetchrow(queries.RECORD, task_id, lease, *batch.columns())
        for queue in sorted(queues):
            self._wake_tasks(queue)
        return payloads


class _BodyFailed(Exception):
    """Rolls back a transaction whose body raised an error that looks like an outage."""


def _checked(result: WriteResult | Exception) -> WriteResult:
    """A group commit's result for one write, or the error of that write alone."""
    if isinstance(result, Exception):
        raise result
    return result


def claimed_tasks(rows: Sequence[Any]) -> list[ClaimedTask]:
    """Rows of a claim (``queries._CLAIMED_COLUMNS``), in id order."""
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
            queue=row["queue"],
        )
        for row in sorted(rows, key=lambda r: r["id"])
    ]
