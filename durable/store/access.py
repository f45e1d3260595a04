"""How the store reaches the database: round trips and transactions, translated and fenced.

Every statement the store runs goes through `StoreAccess`: ``_fetch``/``_fetchrow`` for one
round trip on the pool, ``_transaction`` for several in one transaction. Both turn asyncpg's
connection errors into ``DatabaseUnavailable`` (`durable.store.pool.Translated`), so nothing
above the store sees an asyncpg exception for a database that went away; other driver errors
(a deadlock, a constraint) pass for the method that expects them to handle.

A fenced transaction starts with a statement that locks the task row only if the task is still
held with the caller's lease (`Fence`), and raises LeaseLost if it is not, before anything is
written: a worker that lost its task writes nothing for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from durable.errors import DurableError
from durable.store import queries
from durable.store.pool import Translated
from durable.store.wakeups import TASK_EVENTS_CHANNEL, TASKS_CHANNEL, Wakeups


class LeaseLost(DurableError):
    """This worker no longer holds the task: its writes were refused."""

    @classmethod
    def of(cls, task_id: int, lease: int) -> LeaseLost:
        """The error for ``task_id`` no longer held with ``lease``."""
        return cls(f"task {task_id} is no longer held with lease {lease}")


@dataclass(frozen=True)
class Fence:
    """The first statement of a fenced transaction, run with ``(task_id, lease, *args)``.

    It returns a row only if the task is still running under ``lease``, and locks that row
    (``FOR NO KEY UPDATE``, which a takeover waits for) until the transaction ends. It may read
    more in the same round trip: what is already recorded, say.
    """

    task_id: int
    lease: int
    query: str = queries.LOCK_HELD_TASK
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Transaction:
    """An open transaction: its connection and the row its fence returned (None unfenced)."""

    conn: asyncpg.Connection
    fenced: Any = None


class StoreAccess:
    """The pool, the wake-ups, and the one way to run statements on them."""

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self.pool = pool
        self.wakeups = Wakeups(pool)
        self._translated = Translated(url)

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        async with self._translated:
            return list(await self.pool.fetch(query, *args))

    async def _fetchrow(self, query: str, *args: Any) -> Any:
        async with self._translated:
            return await self.pool.fetchrow(query, *args)

    @contextlib.asynccontextmanager
    async def _transaction(self, fence: Fence | None = None) -> AsyncIterator[Transaction]:
        """One transaction on a pooled connection, fenced by ``fence`` if given.

        Raises:
            LeaseLost: the fence found the task no longer held (nothing was written).
            DatabaseUnavailable: the connection failed (the transaction may or may not have
                committed if it failed during the commit).
        """
        async with self._translated, self.pool.acquire() as conn, conn.transaction():
            fenced = None
            if fence is not None:
                fenced = await conn.fetchrow(fence.query, fence.task_id, fence.lease, *fence.args)
                if fenced is None:
                    raise LeaseLost.of(fence.task_id, fence.lease)
            yield Transaction(conn, fenced)

    def _wake_tasks(self, queue: str | None) -> None:
        if queue is not None:
            self.wakeups.send(TASKS_CHANNEL, queue)

    def _told_lines(self, task_id: int, lines: int) -> None:
        if lines:
            self.wakeups.send(TASK_EVENTS_CHANNEL, f"{task_id}:log")
