"""Group commit on a real database: RECORD_MANY and FINISH_MANY, fencing and children.

Many tasks' writes share one statement (durable.store.group_commit). Each task must still be
fenced on its own, and children that end in the same statement must count themselves off
their parent's wait together, with no lost wake-up when the parent suspends at that moment
(the same interleavings as test_wakeups.py forces for FINISH).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from durable.models import TaskState
from durable.store import queries
from durable.store.records import Batch, FencedWrite, many_columns
from durable.store.store import Store
from tests.integration.test_wakeups import EMPTY, begin_suspension, state, wait_until_blocked


async def running(conn: asyncpg.Connection, parent_id: int | None = None, queue: str = "q") -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO durable.tasks (name, workflow, state, lease, worker_id, parent_id, queue)"
            " VALUES ('t', 'm:f', 'running', 1, 'w', $1, $2) RETURNING id",
            parent_id,
            queue,
        )
    )


def step(seq: int, line: str | None = None) -> Batch:
    batch = Batch([seq], ["step"], [f"s{seq}"], ['{"status": "ok", "value": 1}'], [], [])
    if line is not None:
        batch.line_nos.append(0)
        batch.lines.append(line)
    return batch


async def finish_many(conn: asyncpg.Connection, task_ids: list[int]) -> list[asyncpg.Record]:
    writes = [FencedWrite(i, 1, Batch.empty(), "complete", "1", None) for i in task_ids]
    outcomes = ([w.state for w in writes], [w.result_json for w in writes], [None] * len(writes))
    return list(await conn.fetch(queries.FINISH_MANY, *many_columns(writes), *outcomes))


async def suspend_on_children(
    conn: asyncpg.Connection, parent_id: int, children: list[int]
) -> None:
    waiting = json.dumps({"promises": [], "notification": False, "children": children})
    row = await conn.fetchrow(
        queries.SUSPEND, parent_id, 1, *EMPTY, None, [], False, waiting, children
    )
    assert row["held"] == 1


async def test_each_task_of_a_shared_write_is_fenced_on_its_own(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        held, stale = await running(conn), await running(conn)
        await conn.execute("UPDATE durable.tasks SET lease = 2 WHERE id = $1", stale)  # taken over
        writes = [FencedWrite(held, 1, step(0, "hello")), FencedWrite(stale, 1, step(0, "late"))]
        rows = await conn.fetch(queries.RECORD_MANY, *many_columns(writes))
        assert [(r["task_id"], r["held"], r["lines"]) for r in rows] == [
            (held, True, 1),
            (stale, False, 0),
        ]
        events = await conn.fetch("SELECT task_id, seq FROM durable.events ORDER BY task_id")
        assert [(e["task_id"], e["seq"]) for e in events] == [(held, 0)]
        lines = await conn.fetch("SELECT task_id, line FROM durable.logs")
        assert [(r["task_id"], r["line"]) for r in lines] == [(held, "hello")]
    finally:
        await conn.close()


async def test_children_ending_together_count_off_their_parent_together(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        parent = await running(conn, queue="parents")
        children = [await running(conn, parent) for _ in range(3)]
        other = await running(conn)
        async with conn.transaction():
            await conn.fetchrow(queries.LOCK_HELD_TASK, parent, 1)
            await suspend_on_children(conn, parent, children)

        rows = await finish_many(conn, children[:2])
        assert all(r["held"] for r in rows) and rows[0]["wake_queues"] == []
        assert await state(conn, parent) == "suspended"
        remaining = await conn.fetchval(
            "SELECT waiting_for ->> 'remaining' FROM durable.tasks WHERE id = $1", parent
        )
        assert remaining == "1"

        rows = await finish_many(conn, [other, children[2]])
        assert [r["wake_queues"] for r in rows] == [["parents"], ["parents"]]
        assert await state(conn, parent) == "pending"
        assert {await state(conn, c) for c in [*children, other]} == {"complete"}
    finally:
        await conn.close()


async def test_children_ending_together_while_their_parent_suspends_wake_it(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    ender = await asyncpg.connect(db_url)
    try:
        parent = await running(conn)
        children = [await running(conn, parent) for _ in range(2)]
        tx = await begin_suspension(conn, parent, 1, [])
        ending = asyncio.ensure_future(finish_many(ender, children))
        await wait_until_blocked(conn, ender)  # the count-off waits for the suspension
        await suspend_on_children(conn, parent, children)
        await tx.commit()
        await ending
        assert await state(conn, parent) == "pending"
    finally:
        await ender.close()
        await conn.close()


async def test_children_that_ended_before_the_parent_decides_keep_it_pending(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    ender = await asyncpg.connect(db_url)
    try:
        parent = await running(conn)
        children = [await running(conn, parent) for _ in range(2)]
        tx = ender.transaction()
        await tx.start()
        await finish_many(ender, children)  # holds the parent row's lock until commit
        suspending = asyncio.ensure_future(suspend_after_lock(conn, parent, children))
        await wait_until_blocked(ender, conn)
        await tx.commit()
        await suspending
        assert await state(conn, parent) == "pending"
    finally:
        await ender.close()
        await conn.close()


async def suspend_after_lock(conn: asyncpg.Connection, parent: int, children: list[int]) -> None:
    tx = await begin_suspension(conn, parent, 1, [])
    await suspend_on_children(conn, parent, children)
    await tx.commit()


class StatementCounter:
    """Counts the statements a store sends (both of its single-round-trip entry points)."""

    def __init__(self, store: Store) -> None:
        self.statements = 0
        fetch, fetchrow = store._fetch, store._fetchrow

        async def counted_fetch(query: str, *args: Any) -> list[Any]:
            self.statements += 1
            return await fetch(query, *args)

        async def counted_fetchrow(query: str, *args: Any) -> Any:
            self.statements += 1
            return await fetchrow(query, *args)

        store._fetch = counted_fetch  # type: ignore[method-assign]
        store._fetchrow = counted_fetchrow  # type: ignore[method-assign]


async def test_concurrent_writes_of_many_tasks_share_statements(db_url: str) -> None:
    """Through the store: 40 tasks writing at once go out in far fewer than 40 statements."""
    conn = await asyncpg.connect(db_url)
    store = await Store.open(db_url, max_size=4)
    counter = StatementCounter(store)
    try:
        tasks = [await running(conn) for _ in range(40)]
        await asyncio.gather(*(store.record(t, 1, step(0, f"line {t}")) for t in tasks))
        await asyncio.gather(
            *(store.finish(t, 1, step(1), state=TaskState.COMPLETE, result_json="1",
                           error_json=None)
              for t in tasks)
        )  # fmt: skip
        assert await conn.fetchval("SELECT count(*) FROM durable.events") == 80
        assert await conn.fetchval("SELECT count(*) FROM durable.logs") == 40
        assert {await state(conn, t) for t in tasks} == {"complete"}
        # The first write of each kind goes alone; the 39 queued behind it share the next.
        assert counter.statements <= 4, f"80 writes took {counter.statements} statements"
    finally:
        await store.close()
        await conn.close()


async def test_concurrent_launches_share_statements_and_keys_stay_unique(db_url: str) -> None:
    """Client.launch from many coroutines: fewer statements, every launch its own task, and
    launches with the same key (in one batch or not) all name one task."""
    store = await Store.open(db_url, max_size=4)
    counter = StatementCounter(store)

    def launch(number: int, key: str | None = None) -> Any:
        return store.create_task(
            name=f"t{number}",
            workflow="m:f",
            args_json=f"[{number}]",
            kwargs_json="{}",
            key=key,
            queue="q",
        )

    try:
        plain = await asyncio.gather(*(launch(n) for n in range(30)))
        assert counter.statements <= 3, f"30 launches took {counter.statements} statements"
        assert len({task_id for task_id, *_ in plain}) == 30
        assert all(created for *_, created in plain)
        assert [name for _, name, _, _ in plain] == [f"t{n}" for n in range(30)]

        keyed = await asyncio.gather(*(launch(100 + n, key="same") for n in range(5)))
        assert len({task_id for task_id, *_ in keyed}) == 1
        assert sum(created for *_, created in keyed) == 1
        again = await asyncio.gather(launch(200, key="same"), launch(201, key="other"))
        assert again[0][0] == keyed[0][0] and not again[0][3]
        assert again[1][3]

        conn = await asyncpg.connect(db_url)
        try:
            rows = await conn.fetch("SELECT id, name, args::text AS args FROM durable.tasks")
        finally:
            await conn.close()
        by_id = {row["id"]: row for row in rows}
        assert len(by_id) == 32
        for task_id, name, _, _ in plain:
            assert by_id[task_id]["args"] == f"[{name[1:]}]"
    finally:
        await store.close()
