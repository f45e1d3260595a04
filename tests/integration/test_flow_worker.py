"""An embedded worker facing tasks it may not claim: a due timer in a paused queue, or in a
queue at its cap, must not make the claim loop spin (it waits for a notification instead)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

import durable


async def test_a_due_timer_in_a_paused_queue_does_not_spin_the_claim_loop(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO durable.tasks (name, workflow, queue, state, wake_at, started_at)"
            " VALUES ('t', 'm:f', 'held', 'suspended', now() - interval '1 second', now())"
        )
    finally:
        await conn.close()
    async with durable.Client(db_url) as client:
        await client.configure_queue("held", paused=True)
    claims = 0
    worker = durable.Worker(db_url, queues=["held"], poll_interval=5.0)
    async with worker:
        store: Any = worker._store
        claim = store.claim

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal claims
            claims += 1
            return await claim(*args, **kwargs)

        store.claim = counted
        worker._wake.set()
        # Nothing announces "not claiming": a second of it, counted.
        await asyncio.sleep(1.0)
    assert claims <= 3, claims
