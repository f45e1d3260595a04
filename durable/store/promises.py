"""The store's face for durable promises and task mailboxes.

The two ways something outside a task wakes it. Completing a promise and sending a
notification lock the rows a suspending run locks, so no wake-up is lost (queries.SUSPEND).
The ``*_on`` methods run inside a caller's transaction: a workflow's own completion or
receipt is recorded in the same transaction (`Runs.in_transaction`).
"""

from __future__ import annotations

import asyncpg

from durable.errors import TaskFinished, TaskNotFound
from durable.models import Notification, PromiseState, TaskState
from durable.store import queries
from durable.store.access import StoreAccess
from durable.store.records import loads
from durable.store.wakeups import PROMISES_CHANNEL, TASKS_CHANNEL, Wakeup


class Promises(StoreAccess):
    """Promises and notifications."""

    async def complete_promise(
        self, promise_id: str, state: str, value_json: str | None, message: str | None
    ) -> PromiseState:
        """Resolve or reject a promise (at most once); the state that won."""
        async with self._transaction() as tx:
            won, wakeups = await self.complete_promise_on(
                tx.conn, promise_id, state, value_json, message
            )
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
        return PromiseState(row["state"], loads(row["value"]), row["message"]), wakeups

    async def peek_promise(self, promise_id: str) -> PromiseState:
        """A promise's state; one nobody has touched yet is pending."""
        row = await self._fetchrow(queries.PEEK_PROMISE, promise_id)
        if row is None:
            return PromiseState("pending")
        return PromiseState(row["state"], loads(row["value"]), row["message"])

    async def send_notification(self, task_id: int, event: str, data_json: str) -> None:
        """Queue a notification for a task and wake it if it waits for one."""
        async with self._transaction() as tx:
            row = await tx.conn.fetchrow(queries.LOCK_TASK, task_id)
            if row is None:
                raise TaskNotFound(f"no task with id {task_id}")
            if TaskState(row["state"]).is_final:
                raise TaskFinished(f"task is finished: task {task_id} is {row['state']}")
            sent = await tx.conn.fetchrow(queries.SEND_NOTIFICATION, task_id, event, data_json)
        self._wake_tasks(sent["wake_queue"])

    @staticmethod
    async def consume_notification_on(
        conn: asyncpg.Connection, task_id: int, seq: int
    ) -> Notification | None:
        """Take the oldest unread notification of a task, inside the caller's transaction."""
        row = await conn.fetchrow(queries.CONSUME_NOTIFICATION, task_id, seq)
        if row is None:
            return None
        return Notification(row["event"], loads(row["data"]), row["created_at"])
