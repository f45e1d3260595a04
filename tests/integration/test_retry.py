"""`durable retry` of a failed task: the poison counter starts again, the task keeps counting
as one that has run (so a cancellation before its next claim still runs its cleanup)."""

from __future__ import annotations

import asyncpg

import durable


async def test_retry_resets_losses_and_a_later_cancel_wakes_the_task(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        task_id = await conn.fetchval(
            "INSERT INTO durable.tasks (name, workflow, state, attempts, losses, error)"
            " VALUES ('poisoned', 'tests.acceptance.workflows:sleeper', 'failed', 4, 4,"
            " jsonb_build_object('type', 'Abandoned', 'message', 'abandoned after 4 attempts'))"
            " RETURNING id"
        )
        async with durable.Client(db_url) as client:
            assert await client.retry(task_id) == "pending"
            row = await conn.fetchrow(
                "SELECT losses, attempts FROM durable.tasks WHERE id = $1", task_id
            )
            # One more loss must not abandon it at once (max_attempts 5 by default).
            assert (row["losses"], row["attempts"]) == (0, 4)
            # It has run before: woken to run its cleanup, not cancelled on the spot.
            assert await client.cancel(task_id) == "pending"
            info = await client.get(task_id)
            assert info.state == "pending"
    finally:
        await conn.close()
