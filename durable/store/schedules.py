"""The store's face for cron schedules (SPEC 12): keep them, and fire their due ticks.

A tick launches one task with the key ``schedule:NAME:ISO-TIME`` (the tick in UTC), so however
many workers fire at once, and whatever a crash repeats, a tick has one task: the schedule
row is locked (SKIP LOCKED) by the worker that fires it, and the key refuses a second task.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from durable import cron
from durable.errors import DurableError, ScheduleNotFound
from durable.models import ScheduleInfo, TaskHandle
from durable.store import queries
from durable.store.access import StoreAccess
from durable.store.wakeups import (
    CANCEL_CHANNEL,
    SCHEDULES_CHANNEL,
    TASK_EVENTS_CHANNEL,
)

log = structlog.get_logger("durable.scheduler")

FINAL = ("complete", "failed", "cancelled")

# The latest due tick is fired even when it is this late and catch-up is 0: a worker busy for
# a moment has not "missed" it. Older ticks are launched only within the schedule's catch-up.
GRACE = timedelta(seconds=5)


def tick_key(name: str, tick: datetime) -> str:
    """The task key of a schedule's tick: one task per tick."""
    return f"schedule:{name}:{tick.isoformat()}"


def schedule_info(row: Any) -> ScheduleInfo:
    """A row of the schedule columns as a ScheduleInfo."""
    return ScheduleInfo(
        name=row["name"],
        workflow=row["workflow"],
        cron=row["cron"],
        timezone=row["timezone"],
        args=json.loads(row["args"]),
        kwargs=json.loads(row["kwargs"]),
        queue=row["queue"],
        overlap=row["overlap"],
        catch_up=row["catch_up"],
        paused=row["paused"],
        next_at=row["next_at"],
        last_task_id=row["last_task_id"],
    )


class Schedules(StoreAccess):
    """Cron schedules and their firing."""

    async def upsert_schedule(self, info: ScheduleInfo) -> ScheduleInfo:
        """Add or replace a schedule (``info.next_at`` is its first tick)."""
        row = await self._fetchrow(
            queries.UPSERT_SCHEDULE,
            info.name,
            info.workflow,
            info.cron,
            info.timezone,
            json.dumps(info.args),
            json.dumps(info.kwargs),
            info.queue,
            info.overlap,
            info.catch_up,
            info.next_at,
        )
        self.wakeups.send(SCHEDULES_CHANNEL, info.name)
        return schedule_info(row)

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule, by name."""
        return [schedule_info(row) for row in await self._fetch(queries.LIST_SCHEDULES)]

    async def get_schedule(self, name: str) -> ScheduleInfo:
        """The schedule ``name`` (ScheduleNotFound if none)."""
        row = await self._fetchrow(queries.GET_SCHEDULE, name)
        if row is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        return schedule_info(row)

    async def pause_schedule(
        self, name: str, paused: bool, next_at: datetime | None
    ) -> ScheduleInfo:
        """Pause, or resume from ``next_at``."""
        row = await self._fetchrow(queries.PAUSE_SCHEDULE, name, paused, next_at)
        if row is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        self.wakeups.send(SCHEDULES_CHANNEL, name)
        return schedule_info(row)

    async def delete_schedule(self, name: str) -> None:
        """Delete a schedule (its tasks stay)."""
        if await self._fetchrow(queries.DELETE_SCHEDULE, name) is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")

    async def launch_ticks(self, name: str, ticks: list[datetime]) -> list[TaskHandle]:
        """Launch the given ticks of a schedule now, whatever its overlap (trigger, backfill)."""
        info = await self.get_schedule(name)
        handles = []
        async with self._transaction() as tx:
            for tick in ticks:
                handles.append(await self._launch_tick(tx.conn, info, tick, pass_time=True))
            if handles:
                await tx.conn.execute(
                    queries.SCHEDULE_FIRED, name, info.next_at, handles[-1].id, None
                )
        return handles

    async def next_schedule(self) -> tuple[datetime | None, bool]:
        """The earliest tick of an active schedule, and whether a tick is buffered."""
        row = await self._fetchrow(queries.NEXT_SCHEDULE)
        return row["next_at"], bool(row["buffered"])

    async def fire_due(self, wants_scheduled_at: Callable[[str], bool]) -> int:
        """Fire every due tick of every schedule nobody else is firing; the tasks launched.

        ``wants_scheduled_at(workflow)`` says whether the workflow takes ``scheduled_at``.
        """
        launched = 0
        async with self._transaction() as tx:
            for row in await tx.conn.fetch(queries.DUE_SCHEDULES):
                try:
                    async with tx.conn.transaction():  # a savepoint: one bad schedule alone
                        launched += await self._fire(tx.conn, row, wants_scheduled_at)
                except (ValueError, DurableError, asyncpg.PostgresError) as error:
                    # A schedule edited into something that cannot fire (a cron or zone this
                    # code refuses, args Postgres refuses): the others fire, it is logged.
                    log.error("schedule cannot fire", schedule=row["name"], error=repr(error))
        return launched

    async def _fire(self, conn: asyncpg.Connection, row: Any, wants: Callable[[str], bool]) -> int:
        info = schedule_info(row)
        now: datetime = row["now"]
        last_id, last_state = info.last_task_id, row["last_state"]
        buffered: datetime | None = row["buffered_at"]
        pass_time = wants(info.workflow)
        launched = 0
        due: list[datetime] = []
        if buffered is not None and (last_state is None or last_state in FINAL):
            due.append(buffered)
            buffered = None
        if info.next_at <= now:
            # next_at is a tick (computed from the cron); those after it come from the cron.
            later = cron.ticks_after(info.cron, info.timezone, info.next_at)
            ticks = [info.next_at, *itertools.takewhile(lambda t: t <= now, later)]
            kept = [t for t in ticks if now - t <= timedelta(seconds=info.catch_up)]
            if ticks and ticks[-1] not in kept and now - ticks[-1] <= GRACE:
                kept.append(ticks[-1])
            due.extend(kept)
        for tick in due:
            busy = last_state is not None and last_state not in FINAL
            if busy and info.overlap == "skip":
                continue
            if busy and info.overlap == "buffer_one":
                buffered = tick
                continue
            if busy and info.overlap == "cancel_other":
                assert last_id is not None
                cancelled = await conn.fetchrow(queries.CANCEL_TASK, last_id)
                self._after_commit_cancel(cancelled)
            handle = await self._launch_tick(conn, info, tick, pass_time=pass_time)
            last_id, last_state = handle.id, "pending"
            launched += int(handle.created)
        next_at = cron.next_after(info.cron, info.timezone, max(now, info.next_at))
        await conn.execute(queries.SCHEDULE_FIRED, info.name, next_at, last_id, buffered)
        return launched

    def _after_commit_cancel(self, row: Any) -> None:
        if row is not None:
            if row["flagged"]:
                self.wakeups.send(CANCEL_CHANNEL, str(row["id"]))
            if row["ended"]:
                self.wakeups.send(TASK_EVENTS_CHANNEL, f"{row['id']}:final")
            self._wake_tasks(row["wake_queue"])

    async def _launch_tick(
        self, conn: asyncpg.Connection, info: ScheduleInfo, tick: datetime, *, pass_time: bool
    ) -> TaskHandle:
        kwargs = dict(info.kwargs)
        if pass_time:
            kwargs["scheduled_at"] = tick.isoformat()
        row = await conn.fetchrow(
            queries.CREATE_TASK,
            f"{info.name} @ {tick.isoformat()}",
            info.workflow,
            json.dumps(info.args),
            json.dumps(kwargs),
            tick_key(info.name, tick),
            info.queue,
            None,
            False,
            0,
            None,
            None,  # no trace context: a tick is not launched by traced code
        )
        if row is None:  # a concurrent launch of this tick, not committed yet: it has it
            raise DurableError(f"tick {tick.isoformat()} of {info.name!r} is being launched")
        if row["created"]:
            self._wake_tasks(row["queue"])
        return TaskHandle(
            id=row["id"], name=row["name"], workflow=row["workflow"], created=row["created"]
        )
