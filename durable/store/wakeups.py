"""Wake-ups: the NOTIFYs that tell workers and clients to look again, sent after commit.

Why not NOTIFY inside the writing transaction, atomically with the write it announces:
Postgres serialises every committing transaction that queued a notification on one
database-wide lock, held through its WAL flush. With a NOTIFY in each recorded effect, all
of durable's commits would queue behind each other on that lock (pgbench on the 2-core
benchmark machine: 27,900 single-row commits/s, 3,800/s with a ``pg_notify`` in each).

So durable's data commits carry no NOTIFY. Each process has one `Wakeups`: after a write has
committed, the store hands it the (channel, payload) pairs that announce it, and it sends them
in one statement at a time. What accumulates while a send is in flight goes out together in
the next one, and the statement commits with ``synchronous_commit`` off: a wake-up needs no
disk flush, as the data it announces is already durable. Measured the same way, single-row
commits with one such wake-up per five reach 27,900/s in all.

A wake-up is a hint, never the only way to learn something: a process that dies between a
commit and its send loses that send, so every waiter also re-checks on a slow fallback timer
(workers: ``poll_interval``; clients: `durable.client.FALLBACK_RECHECK`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import asyncpg
import structlog

from durable.store import queries

# The channels, and what their payload is.
TASKS_CHANNEL = "durable_tasks"  # a queue name: it has runnable tasks
TIMERS_CHANNEL = "durable_timers"  # a queue name: a task of it suspended on a timer
CANCEL_CHANNEL = "durable_cancel"  # a task id: cancellation requested while it runs
TASK_EVENTS_CHANNEL = "durable_task_events"  # "<task id>:log|suspended|final"
PROMISES_CHANNEL = "durable_promises"  # a promise id: it was completed
QUEUES_CHANNEL = "durable_queues"  # a queue name: its flow control changed
SCHEDULES_CHANNEL = "durable_schedules"  # a schedule name: it was added or changed

Wakeup = tuple[str, str]

log = structlog.get_logger("durable.wakeups")


class Wakeups:
    """Coalesces wake-ups and sends them, after commit, one statement at a time."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # An ordered set: the same wake-up queued twice before a send goes out once.
        self._pending: dict[Wakeup, None] = {}
        self._sender: asyncio.Task[None] | None = None

    def send(self, channel: str, payload: str) -> None:
        """Queue one wake-up; call only once the write it announces has committed."""
        self._pending[(channel, payload)] = None
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(
                self._send_pending(), name="durable-wakeups"
            )

    def send_all(self, wakeups: Iterable[Wakeup]) -> None:
        """Queue several wake-ups (see `send`)."""
        for channel, payload in wakeups:
            self.send(channel, payload)

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until everything queued so far has been sent or given up."""
        sender = self._sender
        if sender is not None and not sender.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(sender), timeout)

    async def _send_pending(self) -> None:
        while self._pending:
            batch = list(self._pending)
            self._pending.clear()
            channels = [channel for channel, _ in batch]
            payloads = [payload for _, payload in batch]
            try:
                await self._pool.execute(queries.SEND_WAKEUPS, channels, payloads)
            except Exception as error:  # a hint lost: the waiters' fallback re-check covers it
                log.warning("wake-ups not sent", count=len(batch), error=str(error))
