"""What a `ctx.transaction` function raises is its own error, not "the database is down".

The store retries a write that failed because the database went away (DatabaseUnavailable),
forever if need be. A user's transaction function that raises ``TimeoutError`` or an
``OSError`` of its own (an HTTP call inside it that timed out, say) while its connection is
fine must fail that transaction, which the workflow then sees as a failed step: taken for an
outage, it was retried with backoff for ever and its task stayed ``running``. Only a
connection that died under the function is an outage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from durable.errors import DatabaseUnavailable
from durable.store.records import Batch
from durable.store.store import Store


@pytest.fixture
async def held(db_url: str) -> AsyncIterator[tuple[Store, int]]:
    """A store and the id of a task it holds with lease 1."""
    conn = await asyncpg.connect(db_url)
    try:
        task_id = await conn.fetchval(
            "INSERT INTO durable.tasks (name, workflow, state, lease, worker_id)"
            " VALUES ('t', 'm:f', 'running', 1, 'w') RETURNING id"
        )
    finally:
        await conn.close()
    store = await Store.open(db_url)
    try:
        yield store, task_id
    finally:
        await store.close()


@pytest.mark.parametrize("error", [TimeoutError("the fn's own"), ConnectionRefusedError(111, "x")])
async def test_an_error_the_function_raises_is_its_own(
    held: tuple[Store, int], error: Exception
) -> None:
    store, task_id = held

    async def body(conn: asyncpg.Connection) -> Batch:
        await conn.execute("CREATE TABLE written_by_body (x int)")
        raise error

    with pytest.raises(type(error)) as raised:
        await store.in_transaction(task_id, 1, 0, body)
    assert raised.value is error
    assert await store.list_events(task_id) == []
    tables = await store.pool.fetchval("SELECT to_regclass('written_by_body')")
    assert tables is None  # rolled back


async def test_a_connection_that_dies_under_the_function_is_an_outage(
    held: tuple[Store, int],
) -> None:
    store, task_id = held

    async def body(conn: asyncpg.Connection) -> Batch:
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        raise AssertionError("the statement above ends the connection")

    with pytest.raises(DatabaseUnavailable):
        await store.in_transaction(task_id, 1, 0, body)
    assert await store.list_events(task_id) == []
