"""The claim statement alone: how long one claim of 50 tasks takes, in a fresh database.

    python -m benchmarks.claim [--server URL] [--claims 1500] [--flow none|concurrency|keys]

2,000 pending tasks among 50,000 finished ones; each claim runs in a transaction that is
rolled back, so every claim sees the same backlog. ``--flow none`` is the plain claim
(CLAIM_TASKS) on a queue without limits; ``concurrency`` and ``keys`` the claim of a limited
queue (LOCK_LIMITED_QUEUES + CLAIM_LIMITED + RATE_REOPENS, as a worker runs it) with a cap of
50, or key_concurrency=1 over 100 keys. Run it on two commits to compare them (the figures in
the README's "Flow control and schedules" came from 952d430 and this branch, alternated).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from benchmarks.common import DEFAULT_SERVER
from durable.store import migrate, queries

DATABASE = "bench_durable_claim"


async def prepare(server: str, flow: str) -> str:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    url = server.rsplit("/", 1)[0] + f"/{DATABASE}"
    await migrate.upgrade(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO durable.tasks (name, workflow, state, finished_at)"
            " SELECT 'n', 'm:f', 'complete', now() FROM generate_series(1, 50000)"
        )
        keyed = flow == "keys"
        await conn.execute(
            "INSERT INTO durable.tasks (name, workflow"
            + (", concurrency_key)" if keyed else ")")
            + " SELECT 'n', 'm:f'"
            + (", 'k' || (i % 100)" if keyed else "")
            + " FROM generate_series(1, 2000) AS i"
        )
        if flow == "concurrency":
            await conn.execute(
                "INSERT INTO durable.queues (name, concurrency) VALUES ('default', 50)"
            )
        elif keyed:
            await conn.execute(
                "INSERT INTO durable.queues (name, key_concurrency) VALUES ('default', 1)"
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return url


async def claim_once(conn: asyncpg.Connection, flow: str) -> int:
    if flow == "none":
        return len(await conn.fetch(queries.CLAIM_TASKS, ["default"], 50, "w", 0.1))
    locked = [r["name"] for r in await conn.fetch(queries.LOCK_LIMITED_QUEUES, ["default"])]
    rows = await conn.fetch(queries.CLAIM_LIMITED, locked, 50, "w", 0.1)
    await conn.fetchval(queries.RATE_REOPENS, locked)
    return len(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.claim")
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--claims", type=int, default=1500)
    parser.add_argument("--flow", choices=["none", "concurrency", "keys"], default="none")
    options = parser.parse_args()
    url = await prepare(options.server, options.flow)
    conn = await asyncpg.connect(url)
    samples = []
    try:
        for _ in range(options.claims):
            transaction = conn.transaction()
            await transaction.start()
            started = time.perf_counter()
            claimed = await claim_once(conn, options.flow)
            samples.append(time.perf_counter() - started)
            await transaction.rollback()
            assert claimed == 50, claimed
    finally:
        await conn.close()
    samples = sorted(samples[100:])  # the first ones plan and warm the cache
    p90 = samples[int(len(samples) * 0.9)]
    print(
        f"claim --flow {options.flow}: median {statistics.median(samples) * 1000:.3f} ms,"
        f" p90 {p90 * 1000:.3f} ms ({len(samples)} claims of 50)"
    )


if __name__ == "__main__":
    asyncio.run(main())
