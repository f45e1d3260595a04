"""No lost wake-ups, with the interleavings forced: the suspension protocol of SUSPEND.

A task suspending on a promise or its mailbox and a completer acting at the same moment are
ordered by row locks (the task row, the promise rows); the statement that decides "suspended"
runs after the locks are held, so it sees any completion that committed first, and a completion
that comes after it sees the suspension. Each test holds one side's transaction open at the
critical point while the other side runs, then checks the task is pending, not suspended.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from durable.store import queries

EMPTY: tuple[list[int], list[str], list[str], list[str], list[int], list[str]] = (
    [], [], [], [], [], [],
)  # fmt: skip


@pytest.fixture
async def running_task(db_url: str) -> AsyncIterator[tuple[asyncpg.Connection, int, int]]:
    conn = await asyncpg.connect(db_url)
    row = await conn.fetchrow(
        "INSERT INTO durable.tasks (name, workflow, state, lease, worker_id)"
        " VALUES ('t', 'm:f', 'running', 1, 'w') RETURNING id"
    )
    yield conn, row["id"], 1
    await conn.close()


async def begin_suspension(
    conn: asyncpg.Connection, task_id: int, lease: int, promises: list[str]
) -> asyncpg.transaction.Transaction:
    """The suspender's first statements: fencing lock, then the promise locks."""
    tx = conn.transaction()
    await tx.start()
    assert await conn.fetchrow(queries.LOCK_HELD_TASK, task_id, lease) is not None
    if promises:
        await conn.execute(queries.ENSURE_PROMISES, promises)
        await conn.fetch(queries.LOCK_PROMISES, promises)
    return tx


async def finish_suspension(
    conn: asyncpg.Connection, task_id: int, lease: int, promises: list[str], mailbox: bool
) -> None:
    waiting = json.dumps({"promises": promises, "notification": mailbox})
    row = await conn.fetchrow(
        queries.SUSPEND, task_id, lease, *EMPTY, None, promises, mailbox, waiting, []
    )
    assert row["held"] == 1


async def state(conn: asyncpg.Connection, task_id: int) -> str:
    return str(await conn.fetchval("SELECT state FROM durable.tasks WHERE id = $1", task_id))


async def test_a_promise_completed_while_the_task_suspends_wakes_it(
    db_url: str, running_task: tuple[asyncpg.Connection, int, int]
) -> None:
    conn, task_id, lease = running_task
    tx = await begin_suspension(conn, task_id, lease, ["p"])
    completer = await asyncpg.connect(db_url)
    completing = asyncio.ensure_future(complete(completer, "p"))
    await wait_until_blocked(conn, completer)  # the completion waits for the suspension
    await finish_suspension(conn, task_id, lease, ["p"], False)
    await tx.commit()
    await completing
    await completer.close()
    assert await state(conn, task_id) == "pending"


async def test_a_promise_completed_just_before_the_suspension_decides_keeps_it_pending(
    db_url: str, running_task: tuple[asyncpg.Connection, int, int]
) -> None:
    conn, task_id, lease = running_task
    completer = await asyncpg.connect(db_url)
    tx = completer.transaction()
    await tx.start()
    await completer.fetchrow(queries.COMPLETE_PROMISE, "p", "resolved", "1", None)
    suspending = asyncio.ensure_future(suspend(conn, task_id, lease, ["p"], False))
    await wait_until_blocked(completer, conn)  # the suspension waits for the completion
    await completer.fetchrow(queries.WAKE_PROMISE_WAITERS, "p")
    await tx.commit()
    await suspending
    await completer.close()
    assert await state(conn, task_id) == "pending"


async def test_a_notification_sent_while_the_task_suspends_wakes_it(
    db_url: str, running_task: tuple[asyncpg.Connection, int, int]
) -> None:
    conn, task_id, lease = running_task
    tx = await begin_suspension(conn, task_id, lease, [])
    sender = await asyncpg.connect(db_url)
    sending = asyncio.ensure_future(send(sender, task_id))
    await wait_until_blocked(conn, sender)
    await finish_suspension(conn, task_id, lease, [], True)
    await tx.commit()
    await sending
    await sender.close()
    assert await state(conn, task_id) == "pending"


async def test_a_notification_sent_just_before_the_suspension_decides_keeps_it_pending(
    db_url: str, running_task: tuple[asyncpg.Connection, int, int]
) -> None:
    conn, task_id, lease = running_task
    sender = await asyncpg.connect(db_url)
    tx = sender.transaction()
    await tx.start()
    assert await sender.fetchrow(queries.LOCK_TASK, task_id) is not None
    suspending = asyncio.ensure_future(suspend(conn, task_id, lease, [], True))
    await wait_until_blocked(sender, conn)
    await sender.fetchrow(queries.SEND_NOTIFICATION, task_id, "go", "null")
    await tx.commit()
    await suspending
    await sender.close()
    assert await state(conn, task_id) == "pending"


async def test_without_a_completion_the_task_stays_suspended(
    running_task: tuple[asyncpg.Connection, int, int],
) -> None:
    conn, task_id, lease = running_task
    await suspend(conn, task_id, lease, ["p"], True)
    assert await state(conn, task_id) == "suspended"


async def complete(conn: asyncpg.Connection, promise_id: str) -> None:
    async with conn.transaction():
        await conn.fetchrow(queries.COMPLETE_PROMISE, promise_id, "resolved", "1", None)
        await conn.fetchrow(queries.WAKE_PROMISE_WAITERS, promise_id)


async def send(conn: asyncpg.Connection, task_id: int) -> None:
    async with conn.transaction():
        await conn.fetchrow(queries.LOCK_TASK, task_id)
        await conn.fetchrow(queries.SEND_NOTIFICATION, task_id, "go", "null")


async def suspend(
    conn: asyncpg.Connection, task_id: int, lease: int, promises: list[str], mailbox: bool
) -> None:
    tx = await begin_suspension(conn, task_id, lease, promises)
    await finish_suspension(conn, task_id, lease, promises, mailbox)
    await tx.commit()


async def wait_until_blocked(holder: asyncpg.Connection, waiter: asyncpg.Connection) -> None:
    """Until ``waiter``'s backend waits on a lock held by ``holder``'s (pg_blocking_pids)."""
    holder_pid = holder.get_server_pid()
    waiter_pid = waiter.get_server_pid()
    async with asyncio.timeout(10):
        while holder_pid not in await holder.fetchval("SELECT pg_blocking_pids($1)", waiter_pid):
            await asyncio.sleep(0.01)  # polling the server's lock table: there is no event


async def test_a_child_that_ends_while_its_parent_suspends_wakes_it(
    db_url: str, running_task: tuple[asyncpg.Connection, int, int]
) -> None:
    conn, parent_id, lease = running_task
    child_id = await conn.fetchval(
        "INSERT INTO durable.tasks (name, workflow, state, lease, worker_id, parent_id)"
        " VALUES ('c', 'm:f', 'running', 1, 'w', $1) RETURNING id",
        parent_id,
    )
    tx = await begin_suspension(conn, parent_id, lease, [])
    child = await asyncpg.connect(db_url)
    ending = asyncio.ensure_future(end_child(child, child_id, parent_id))
    await wait_until_blocked(conn, child)  # the child's count-off waits for the suspension
    waiting = json.dumps({"promises": [], "notification": False, "children": [child_id]})
    await conn.fetchrow(
        queries.SUSPEND, parent_id, lease, *EMPTY, None, [], False, waiting, [child_id]
    )
    await tx.commit()
    await ending
    await child.close()
    assert await state(conn, parent_id) == "pending"


async def test_a_child_that_ended_before_the_parent_decides_keeps_it_pending(
    db_url: str, running_task: tuple[asyncpg.Connection, int, int]
) -> None:
    conn, parent_id, lease = running_task
    child_id = await conn.fetchval(
        "INSERT INTO durable.tasks (name, workflow, state, lease, worker_id, parent_id)"
        " VALUES ('c', 'm:f', 'running', 1, 'w', $1) RETURNING id",
        parent_id,
    )
    child = await asyncpg.connect(db_url)
    tx = child.transaction()
    await tx.start()
    # The child's final write takes the parent row's lock, whatever the parent's state...
    await child.fetchrow(queries.FINISH, child_id, 1, *EMPTY, "complete", "1", None)
    suspending = asyncio.ensure_future(suspend_on_child(conn, parent_id, lease, child_id))
    await wait_until_blocked(child, conn)  # ...so the parent's suspension waits for it
    await tx.commit()
    await suspending
    await child.close()
    assert await state(conn, parent_id) == "pending"


async def end_child(conn: asyncpg.Connection, child_id: int, parent_id: int) -> None:
    await conn.fetchrow(queries.FINISH, child_id, 1, *EMPTY, "complete", "1", None)


async def suspend_on_child(
    conn: asyncpg.Connection, parent_id: int, lease: int, child_id: int
) -> None:
    tx = await begin_suspension(conn, parent_id, lease, [])
    waiting = json.dumps({"promises": [], "notification": False, "children": [child_id]})
    await conn.fetchrow(
        queries.SUSPEND, parent_id, lease, *EMPTY, None, [], False, waiting, [child_id]
    )
    await tx.commit()
