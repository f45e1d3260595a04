"""The store's face for tasks as a whole: launch, fork, read, cancel, retry.

What the client does (and a running parent, for its children): every method is one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durable.errors import DurableError, TaskNotFound
from durable.models import Event, LogLine, TaskInfo, TaskState
from durable.store import queries
from durable.store.access import StoreAccess
from durable.store.group_commit import GroupCommit
from durable.store.records import Launch, loads, task_info
from durable.store.wakeups import CANCEL_CHANNEL, TASK_EVENTS_CHANNEL


class Tasks(StoreAccess):
    """Launching, forking, reading and controlling tasks."""

    _launches: GroupCommit[Launch]

    # -- launching -------------------------------------------------------------------------------

    async def create_task(
        self,
        *,
        name: str,
        workflow: str,
        args_json: str,
        kwargs_json: str,
        key: str | None,
        queue: str,
        priority: int = 0,
        concurrency_key: str | None = None,
        trace_json: str | None = None,
    ) -> tuple[int, str, str, bool]:
        """Insert a task (or find the one with ``key``): (id, name, workflow, created).

        Concurrent launches share statements (group commit), as running tasks' writes do.
        """
        launch = Launch(
            name,
            workflow,
            args_json,
            kwargs_json,
            key,
            queue,
            priority,
            concurrency_key,
            trace_json,
        )
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
            row = await self._fetchrow(
                queries.CREATE_TASK,
                *one.columns(),
                None,
                False,
                *one.flow_columns(),
                one.trace_json,
            )
            rows = [] if row is None else [row]
        else:
            columns = zip(
                *(launch.columns() + launch.flow_columns() for launch in launches), strict=True
            )
            traces = [launch.trace_json for launch in launches]
            rows = await self._fetch(queries.CREATE_TASKS, *(list(c) for c in columns), traces)
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

    # -- reading ---------------------------------------------------------------------------------

    async def get_task(self, task_id: int) -> TaskInfo:
        """The task with this id, or TaskNotFound."""
        row = await self._fetchrow(queries.GET_TASK, task_id)
        if row is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return task_info(row)

    async def task_state(self, task_id: int) -> TaskState:
        """Only the state of a task, or TaskNotFound."""
        row = await self._fetchrow(queries.TASK_STATE, task_id)
        if row is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return TaskState(row["state"])

    async def task_outcome(self, task_id: int) -> tuple[str, Any, Any]:
        """(state, result, error) of a task."""
        row = await self._fetchrow(queries.TASK_OUTCOME, task_id)
        if row is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return row["state"], loads(row["result"]), loads(row["error"])

    async def list_tasks(
        self, *, state: str | None, workflow: str | None, limit: int
    ) -> list[TaskInfo]:
        """Tasks newest first, optionally filtered."""
        rows = await self._fetch(queries.LIST_TASKS, state, workflow, limit)
        return [task_info(row) for row in rows]

    async def list_events(self, task_id: int) -> list[Event]:
        """A task's recorded events in seq order."""
        rows = await self._fetch(queries.LIST_EVENTS, task_id)
        return [
            Event(
                task_id=row["task_id"],
                seq=row["seq"],
                kind=row["kind"],
                label=row["label"],
                payload=loads(row["payload"]),
                at=row["at"],
            )
            for row in rows
        ]

    async def read_logs(self, task_id: int, after_line_no: int) -> list[LogLine]:
        """Log lines with a number greater than ``after_line_no``, in order."""
        rows = await self._fetch(queries.READ_LOGS, task_id, after_line_no)
        return [LogLine(row["task_id"], row["line_no"], row["line"], row["at"]) for row in rows]

    # -- control ---------------------------------------------------------------------------------

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
