"""The store's face for flow control (SPEC 12): queue settings, their claims, debounced launches.

Limits are enforced by the claim of limited queues (`claim_limited`), under a lock per queue;
queues without limits keep the plain one-statement claim (`durable.store.runs.Runs.claim`),
which skips limited and paused queues. See `queries.CLAIM_LIMITED` for why the caps hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from durable.models import QueueInfo
from durable.store import queries
from durable.store.access import StoreAccess
from durable.store.records import ClaimedTask
from durable.store.runs import claimed_tasks
from durable.store.wakeups import QUEUES_CHANNEL, TIMERS_CHANNEL

# A setting left as it is (configure_queue's parameters distinguish it from None: no limit).
KEEP = object()


class Flow(StoreAccess):
    """Queue settings, the claim of limited queues, and debounced launches."""

    async def configure_queue(
        self,
        name: str,
        *,
        concurrency: object = KEEP,
        key_concurrency: object = KEEP,
        rate: object = KEEP,
        paused: object = KEEP,
    ) -> None:
        """Upsert a queue's settings; those left KEEP stay as they are (None: no limit)."""
        rate_limit: object = None
        rate_period: object = None
        if rate is not KEEP and rate is not None:
            rate_limit, rate_period = rate  # type: ignore[misc]
        await self._fetch(
            queries.CONFIGURE_QUEUE,
            name,
            concurrency is not KEEP,
            None if concurrency is KEEP else concurrency,
            key_concurrency is not KEEP,
            None if key_concurrency is KEEP else key_concurrency,
            rate is not KEEP,
            rate_limit,
            rate_period,
            paused is not KEEP,
            None if paused is KEEP else paused,
        )
        # Workers re-read which queues are limited, and claim at once (a resume, a higher cap).
        self.wakeups.send(QUEUES_CHANNEL, name)

    async def list_queues(self) -> list[QueueInfo]:
        """Queues with settings or unfinished tasks, by name."""
        return [
            QueueInfo(
                name=row["name"],
                concurrency=row["concurrency"],
                key_concurrency=row["key_concurrency"],
                rate=None if row["rate_limit"] is None else (row["rate_limit"], row["rate_period"]),
                paused=row["paused"],
                pending=row["pending"],
                running=row["running"],
                suspended=row["suspended"],
            )
            for row in await self._fetch(queries.LIST_QUEUES)
        ]

    async def limited_queues(self, queues: Sequence[str]) -> set[str]:
        """Which of ``queues`` have a limit and are not paused (they need `claim_limited`)."""
        return {row["name"] for row in await self._fetch(queries.LIMITED_QUEUES, list(queues))}

    async def claim_limited(
        self, worker_id: str, queues: Sequence[str], limit: int, *, timer_lead: float = 0.0
    ) -> tuple[list[ClaimedTask], datetime | None]:
        """Claim up to ``limit`` tasks of limited ``queues`` within their limits.

        Returns the tasks, and when a rate-limited queue that is full gets a start back (the
        claimer looks again then; None: no such queue).
        """
        async with self._transaction() as tx:
            locked = [
                row["name"] for row in await tx.conn.fetch(queries.LOCK_LIMITED_QUEUES, queues)
            ]
            if not locked:
                return [], None
            rows = await tx.conn.fetch(queries.CLAIM_LIMITED, locked, limit, worker_id, timer_lead)
            reopens = await tx.conn.fetchval(queries.RATE_REOPENS, locked)
        return claimed_tasks(rows), reopens

    async def debounce_task(
        self,
        *,
        name: str,
        workflow: str,
        args_json: str,
        kwargs_json: str,
        queue: str,
        priority: int,
        concurrency_key: str | None,
        debounce_key: str,
        delay: float,
        max_delay: float | None,
    ) -> tuple[int, str, str, bool]:
        """Create a debounced task, or fold this launch into the one not started yet.

        Returns (id, name, workflow, created).
        """
        row = await self._fetchrow(
            queries.DEBOUNCE_TASK,
            name,
            workflow,
            args_json,
            kwargs_json,
            queue,
            priority,
            concurrency_key,
            debounce_key,
            float(delay),
            None if max_delay is None else float(max_delay),
        )
        # Idle workers sleep until their next timer: this start may be earlier.
        self.wakeups.send(TIMERS_CHANNEL, row["queue"])
        return row["id"], row["name"], row["workflow"], row["created"]
