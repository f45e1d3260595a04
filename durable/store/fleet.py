"""The store's face for the fleet of workers: registration, heartbeats, takeover.

A worker's row is its lease on the tasks it holds: its heartbeat keeps the row fresh, and
any live worker returns the tasks of a worker silent past its lease timeout to pending.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from durable.models import WorkerInfo
from durable.store import queries
from durable.store.access import StoreAccess
from durable.store.records import Reclaimed
from durable.store.wakeups import TASK_EVENTS_CHANNEL


class Fleet(StoreAccess):
    """Workers and their leases."""

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
