"""The store's read side for the server and the metrics: pages of tasks, counts, queues.

Every method is one round trip (two where a table may not exist yet) and reads only what an
index finds: these run on every dashboard refresh and every Prometheus scrape.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from durable.models import TaskInfo
from durable.store import queries
from durable.store.access import StoreAccess
from durable.store.records import task_info


class Overview(StoreAccess):
    """Reads for `durable serve` and `/metrics`."""

    async def task_page(
        self,
        *,
        limit: int,
        state: str | None = None,
        workflow: str | None = None,
        queue: str | None = None,
        name: str | None = None,
        since: datetime | None = None,
        before: int | None = None,
    ) -> list[TaskInfo]:
        """Tasks newest first, filtered, with ids below ``before`` (the cursor)."""
        given = {
            "state": state,
            "workflow": workflow,
            "queue": queue,
            "name": name,
            "since": since,
            "before": before,
        }
        names = tuple(key for key in queries.TASK_PAGE_FILTERS if given[key] is not None)
        values = [given[key] for key in names]
        rows = await self._fetch(queries.task_page(names), *values, limit)
        return [task_info(row) for row in rows]

    async def task_trace(self, task_id: int) -> str | None:
        """The trace context (JSON) a run of this task continues, if any was stored."""
        row = await self._fetchrow(queries.TASK_TRACE, task_id)
        return None if row is None else str(row["trace"])

    async def children(self, task_id: int) -> list[TaskInfo]:
        """The tasks this task launched, oldest first."""
        return [task_info(row) for row in await self._fetch(queries.LIST_CHILDREN, task_id)]

    async def live_task_counts(self) -> list[tuple[str, str, int]]:
        """(state, queue, count) of pending, running and suspended tasks."""
        rows = await self._fetch(queries.LIVE_TASK_COUNTS)
        return [(row["state"], row["queue"], row["n"]) for row in rows]

    async def oldest_pending(self) -> dict[str, float]:
        """Seconds the oldest pending task of each queue has waited."""
        return {row["queue"]: row["age"] for row in await self._fetch(queries.OLDEST_PENDING)}

    async def queue_settings(self) -> list[dict[str, Any]]:
        """Rows of ``durable.queues`` (flow control), or none while the table does not exist."""
        return await self._rows_if_present("durable.queues", queries.QUEUE_SETTINGS)

    async def schedules(self) -> list[dict[str, Any]]:
        """Rows of ``durable.schedules``, or none while the table does not exist."""
        return await self._rows_if_present("durable.schedules", queries.SCHEDULE_ROWS)

    async def _rows_if_present(self, table: str, statement: str) -> list[dict[str, Any]]:
        present = await self._fetchrow(queries.TABLE_EXISTS, table)
        if present is None or not present["present"]:
            return []
        return [json.loads(row["row"]) for row in await self._fetch(statement)]
