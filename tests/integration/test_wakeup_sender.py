"""Wake-ups are sent after commit, coalesced, and a lost one only costs the fallback re-check.

`durable.store.wakeups` moves NOTIFY out of the data commits. These tests check, on a real
database, that what is queued arrives on the channels, that a burst goes out in few
statements, that a client's launch and a task's end still wake their listeners, and that a
waiter whose wake-up never comes (its sender died after the commit) still sees the task end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

import durable
from durable.client import FALLBACK_RECHECK
from durable.store.store import Store
from durable.store.wakeups import TASK_EVENTS_CHANNEL, TASKS_CHANNEL


class Heard:
    """A LISTEN connection that records what arrives, and lets a test await a count."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    def __call__(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        self.items.append((channel, payload))
        self.changed.set()

    async def at_least(self, count: int, timeout: float = 10) -> list[tuple[str, str]]:
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.items


@pytest.fixture
async def heard(db_url: str) -> AsyncIterator[Heard]:
    conn = await asyncpg.connect(db_url)
    recorder = Heard()
    for channel in (TASKS_CHANNEL, TASK_EVENTS_CHANNEL):
        await conn.add_listener(channel, recorder)
    yield recorder
    await conn.close()


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url, max_size=4)
    yield opened
    await opened.close()


class CountingPool:
    """The store's pool, counting the statements the wake-up sender runs on it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.statements = 0

    async def execute(self, query: str, *args: object) -> str:
        self.statements += 1
        return await self.pool.execute(query, *args)


async def test_a_burst_of_wakeups_arrives_in_full_and_in_few_statements(
    store: Store, heard: Heard
) -> None:
    counting = CountingPool(store.pool)
    store.wakeups._pool = counting  # type: ignore[assignment]
    for number in range(200):
        store.wakeups.send(TASK_EVENTS_CHANNEL, f"{number}:log")
    store.wakeups.send(TASK_EVENTS_CHANNEL, "0:log")  # queued twice before a send: once
    await store.wakeups.flush()

    items = await heard.at_least(200)
    assert sorted(items) == sorted((TASK_EVENTS_CHANNEL, f"{n}:log") for n in range(200))
    # The first send takes what was queued when it started; the rest waits for one more.
    assert counting.statements <= 2, f"200 wake-ups went out in {counting.statements} statements"


async def test_a_launch_wakes_the_workers_of_its_queue(db_url: str, heard: Heard) -> None:
    async with durable.Client(db_url) as client:
        await client.launch("tests.acceptance.workflows:returns_args", args=["x"], queue="q1")
    # Closing the client sent what was queued; the listener hears it.
    assert (TASKS_CHANNEL, "q1") in await heard.at_least(1)


async def test_a_waiter_whose_wakeup_is_lost_still_sees_the_task_end(db_url: str) -> None:
    """The task ends by a write that announces nothing, as when its worker dies right after."""
    async with durable.Client(db_url) as client:
        task = await client.launch("tests.acceptance.workflows:returns_args", args=["x"])
        first_look = asyncio.Event()
        get_task = client.store.get_task

        async def looked(task_id: int) -> durable.TaskInfo:
            info = await get_task(task_id)
            first_look.set()
            return info

        client.store.get_task = looked  # type: ignore[method-assign]
        waiter = asyncio.create_task(client.result(task.id, timeout=FALLBACK_RECHECK * 5))
        await first_look.wait()  # it saw the task pending and waits for a wake-up
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute(
                "UPDATE durable.tasks SET state = 'complete', result = '42'::jsonb,"
                " finished_at = now() WHERE id = $1",
                task.id,
            )
        finally:
            await conn.close()
        assert await waiter == 42
