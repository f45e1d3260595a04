"""SPEC 7.2: a transaction step's changes commit exactly once, with workers killed at random."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable

import asyncpg

import durable
from tests.helpers.processes import WorkerProcess

TASKS = 120
KILL_FOR = 8.0


async def test_transactions_commit_exactly_once_under_sigkill(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    conn = await asyncpg.connect(db_url)
    await conn.execute("CREATE TABLE tx_rows (task_id bigint NOT NULL, amount int NOT NULL)")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    fleet = [await workers("--concurrency", "20").start() for _ in range(3)]
    kills = 0
    async with durable.Client(db_url) as client:
        ids = [
            (await client.launch("tests.acceptance.workflows:exactly_once", args=[i])).id
            for i in range(1, TASKS + 1)
        ]
        deadline = time.monotonic() + KILL_FOR
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.3, 1.2))  # the chaos schedule, not a sync point
            victim = rng.randrange(len(fleet))
            fleet[victim].signal(signal.SIGKILL)
            await fleet[victim].wait()
            kills += 1
            fleet[victim] = await workers("--concurrency", "20").start()
        results = await asyncio.gather(*(client.result(i, timeout=120) for i in ids))
    rows = await conn.fetch("SELECT task_id, count(*) AS n FROM tx_rows GROUP BY task_id")
    await conn.close()
    print(f"\nexactly-once: seed={seed} tasks={TASKS} kills={kills}")
    assert results == list(range(1, TASKS + 1))  # each task saw only its own single row
    assert {row["task_id"]: row["n"] for row in rows} == {i: 1 for i in ids}
