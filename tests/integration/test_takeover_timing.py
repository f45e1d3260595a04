"""A silent worker's tasks are taken over when its lease runs out, not a heartbeat later.

The takeover runs in every worker's heartbeat round; a round also learns when the next live
lease would run out and runs again then. Here the live worker heartbeats only every 30 s, and
a "ghost" worker (a row whose heartbeat stopped 1.5 s ago, lease 2 s) holds a task: it must be
taken over and finished within a few seconds, long before the next heartbeat round.
"""

from __future__ import annotations

import asyncpg

import durable


async def test_a_lease_that_runs_out_between_heartbeats_is_taken_over_when_it_does(
    db_url: str,
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO durable.workers (id, host, pid, queues, concurrency, lease_timeout,"
            " heartbeat_at) VALUES ('ghost', 'elsewhere', 1, '{default}', 1, 2,"
            " now() - interval '1.5 seconds')"
        )
        task_id = await conn.fetchval(
            "INSERT INTO durable.tasks (name, workflow, args, state, lease, attempts, worker_id)"
            " VALUES ('held', 'tests.acceptance.workflows:returns_args', '[7]', 'running', 1, 1,"
            " 'ghost') RETURNING id"
        )
    finally:
        await conn.close()

    worker = durable.Worker(db_url, concurrency=4, lease_timeout=2.0, heartbeat_interval=30.0)
    async with worker, durable.Client(db_url) as client:
        # First round at start: the ghost's lease has 0.5 s left. Next round at 30 s unless
        # the round is scheduled at the expiry.
        assert await client.result(task_id, timeout=5) == {"args": [7], "kwargs": {}}
        info = await client.get(task_id)
        assert info.attempts == 2
