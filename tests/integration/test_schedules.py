"""Schedules (SPEC 12) at the store: due ticks, catch-up, overlap policies, racing firers.

Times are made due by moving a schedule's next_at back in the database, so these tests wait
for no clock. Real workers racing over live ticks: tests/acceptance/test_schedules.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

import durable
from durable.store.schedules import tick_key

WF = "m:f"
YEAR = 366 * 86400.0


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[durable.Client]:
    async with durable.Client(db_url) as c:
        yield c


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_url)
    yield connection
    await connection.close()


async def tasks_of(conn: asyncpg.Connection, name: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, key, state, kwargs::text AS kwargs FROM durable.tasks"
        " WHERE key LIKE $1 ORDER BY id",
        f"schedule:{name}:%",
    )


async def make_due(conn: asyncpg.Connection, name: str, at: datetime) -> None:
    await conn.execute("UPDATE durable.schedules SET next_at = $2 WHERE name = $1", name, at)


def never(_: str) -> bool:
    return False


async def fire(client: durable.Client) -> int:
    return await client.store.fire_due(never)


async def test_a_due_tick_launches_one_task_keyed_by_its_time(
    client: durable.Client, conn: asyncpg.Connection
) -> None:
    info = await client.schedule("nightly", WF, cron="0 3 * * *", timezone="Europe/Paris")
    assert info.next_at.astimezone(UTC).hour in (1, 2)  # 03:00 in Paris (CET or CEST)
    tick = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    await make_due(conn, "nightly", tick)
    # Five firers at once (five workers' schedule loops): one task for the tick.
    launched = await asyncio.gather(*(fire(client) for _ in range(5)))
    assert sum(launched) == 1
    [task] = await tasks_of(conn, "nightly")
    assert task["key"] == tick_key("nightly", tick)
    [after] = await client.schedules()
    assert after.next_at > datetime.now(UTC) and after.last_task_id == task["id"]


async def test_missed_ticks_are_skipped_without_catch_up(
    client: durable.Client, conn: asyncpg.Connection
) -> None:
    await client.schedule("yearly", WF, cron="0 0 1 1 *")
    await make_due(conn, "yearly", datetime(2020, 1, 1, tzinfo=UTC))
    assert await fire(client) == 0
    assert await tasks_of(conn, "yearly") == []
    [after] = await client.schedules()
    assert after.next_at > datetime.now(UTC)  # moved on past what was missed


async def test_missed_ticks_within_catch_up_are_launched(
    client: durable.Client, conn: asyncpg.Connection
) -> None:
    await client.schedule("yearly", WF, cron="0 0 1 1 *", overlap="allow", catch_up=2.5 * YEAR)
    this_year = datetime.now(UTC).year
    await make_due(conn, "yearly", datetime(2020, 1, 1, tzinfo=UTC))
    assert await fire(client) in (2, 3)  # the ticks of the last 2.5 years
    keys = [t["key"] for t in await tasks_of(conn, "yearly")]
    assert keys[-1] == tick_key("yearly", datetime(this_year, 1, 1, tzinfo=UTC))


# In the overlap tests the cron is yearly: each tick is the next_at the test sets.
YEARLY = "0 0 1 1 *"


async def test_overlap_skip_and_allow(client: durable.Client, conn: asyncpg.Connection) -> None:
    for overlap in ("skip", "allow"):
        await client.schedule(overlap, WF, cron=YEARLY, overlap=overlap)
        now = datetime.now(UTC).replace(microsecond=0)
        await make_due(conn, overlap, now - timedelta(seconds=2))
        await fire(client)
        await make_due(conn, overlap, now - timedelta(seconds=1))
        await fire(client)  # the previous run is still pending (no worker here)
    assert len(await tasks_of(conn, "skip")) == 1
    assert len(await tasks_of(conn, "allow")) == 2


async def test_overlap_buffer_one_runs_once_after_the_previous(
    client: durable.Client, conn: asyncpg.Connection
) -> None:
    await client.schedule("buf", WF, cron=YEARLY, overlap="buffer_one")
    now = datetime.now(UTC).replace(microsecond=0)
    await make_due(conn, "buf", now - timedelta(seconds=3))
    await fire(client)
    [first] = await tasks_of(conn, "buf")
    for back in (2, 1):  # two more ticks while it runs: one is kept
        await make_due(conn, "buf", now - timedelta(seconds=back))
        await fire(client)
    assert len(await tasks_of(conn, "buf")) == 1
    await conn.execute("UPDATE durable.tasks SET state = 'complete' WHERE id = $1", first["id"])
    assert await fire(client) == 1
    tasks = await tasks_of(conn, "buf")
    assert [t["key"] for t in tasks][1] == tick_key("buf", now - timedelta(seconds=1))


async def test_overlap_cancel_other_cancels_the_previous_run(
    client: durable.Client, conn: asyncpg.Connection
) -> None:
    await client.schedule("co", WF, cron=YEARLY, overlap="cancel_other")
    now = datetime.now(UTC).replace(microsecond=0)
    await make_due(conn, "co", now - timedelta(seconds=2))
    await fire(client)
    await make_due(conn, "co", now - timedelta(seconds=1))
    await fire(client)
    first, second = await tasks_of(conn, "co")
    assert (first["state"], second["state"]) == ("cancelled", "pending")


async def test_pause_resume_trigger_backfill_delete(
    client: durable.Client, conn: asyncpg.Connection
) -> None:
    await client.schedule("h", WF, cron="0 * * * *")
    paused = await client.pause_schedule("h")
    assert paused.paused
    await make_due(conn, "h", datetime.now(UTC) - timedelta(seconds=1))
    assert await fire(client) == 0  # paused: nothing fires
    resumed = await client.resume_schedule("h")
    assert not resumed.paused and resumed.next_at > datetime.now(UTC)
    manual = await client.trigger_schedule("h")
    assert manual.created
    start = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    filled = await client.backfill_schedule("h", start, start + timedelta(hours=2))
    assert [h.created for h in filled] == [True, True, True]  # 00:00, 01:00, 02:00
    again = await client.backfill_schedule("h", start, start + timedelta(hours=2))
    assert [h.id for h in again] == [h.id for h in filled] and not any(h.created for h in again)
    await client.delete_schedule("h")
    with pytest.raises(durable.ScheduleNotFound):
        await client.trigger_schedule("h")
    with pytest.raises(ValueError, match="cron"):
        await client.schedule("bad", WF, cron="every day")
    with pytest.raises(ValueError, match="time zone"):
        await client.schedule("bad", WF, cron="* * * * *", timezone="Mars/Olympus")


async def test_a_schedule_that_cannot_fire_does_not_stop_the_others(
    client: durable.Client, conn: asyncpg.Connection
) -> None:
    for name in ("broken", "fine"):
        await client.schedule(name, WF, cron=YEARLY)
        await make_due(conn, name, datetime.now(UTC) - timedelta(seconds=1))
    await conn.execute("UPDATE durable.schedules SET cron = 'nope' WHERE name = 'broken'")
    assert await fire(client) == 1
    assert len(await tasks_of(conn, "fine")) == 1
