"""A silent worker's tasks are taken over when its lease runs out, not a heartbeat later.

The takeover runs in every worker's heartbeat round; a round also learns when the next live
lease would run out and runs again then. Here the live worker heartbeats only every 30 s, and
a "ghost" worker (a row whose heartbeat stopped 1.5 s ago, lease 2 s) holds a task: it must be
taken over and finished within a few seconds, long before the next heartbeat round.

Each worker is judged by the lease timeout it registered, not by the judge's own setting: a
fleet whose workers run with different settings must not declare a healthy worker dead.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

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

    # The judge's own lease (60 s) would not expire the ghost for a minute: the ghost's (2 s)
    # decides.
    worker = durable.Worker(db_url, concurrency=4, lease_timeout=60.0, heartbeat_interval=30.0)
    async with worker, durable.Client(db_url) as client:
        # First round at start: the ghost's lease has 0.5 s left. Next round at 30 s unless
        # the round is scheduled at the expiry.
        assert await client.result(task_id, timeout=5) == {"args": [7], "kwargs": {}}
        info = await client.get(task_id)
        assert info.attempts == 2


async def test_a_worker_is_judged_by_its_own_lease_timeout(db_url: str) -> None:
    """A worker with a 30 s lease, last heard of 3 s ago, keeps its task under a 1 s judge."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO durable.workers (id, host, pid, queues, concurrency, lease_timeout,"
            " heartbeat_at) VALUES ('patient', 'elsewhere', 1, '{default}', 1, 30,"
            " now() - interval '3 seconds')"
        )
        task_id = await conn.fetchval(
            "INSERT INTO durable.tasks (name, workflow, args, state, lease, attempts, worker_id)"
            " VALUES ('held', 'tests.acceptance.workflows:returns_args', '[7]', 'running', 1, 1,"
            " 'patient') RETURNING id"
        )
    finally:
        await conn.close()

    worker = durable.Worker(db_url, concurrency=4, lease_timeout=1.0, heartbeat_interval=0.2)
    async with worker, durable.Client(db_url) as client:
        # Several of the judge's takeover rounds (one per heartbeat) run meanwhile.
        for _ in range(5):
            await asyncio.wait_for(worker._heartbeat_round.wait(), 5)
        info = await client.get(task_id)
        assert (info.state, info.worker_id) == ("running", "patient")
        assert [w.id for w in await client.workers() if w.id == "patient"] == ["patient"]


def test_a_lease_no_longer_than_the_heartbeat_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="lease_timeout"):
        durable.Worker("postgresql://unused", lease_timeout=5.0, heartbeat_interval=5.0)
