"""The plain claim reads pending tasks in claim order from tasks_pending_idx (PgQueuer's
plan-regression test): with 2,000 pending tasks among 50,000 finished ones, a claim of 50 reads
about 50 index entries, not the backlog sorted. An index led by `queue` cannot give this order
for `queue = ANY(...)` (migration 0004 measured 1.5 ms against 0.9 ms)."""

from __future__ import annotations

import asyncpg

from durable.store import queries


async def test_the_plain_claim_walks_the_pending_index_in_claim_order(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO durable.tasks (name, workflow, state)"
            " SELECT 'n', 'm:f', 'complete' FROM generate_series(1, 50000)"
        )
        await conn.execute(
            "INSERT INTO durable.tasks (name, workflow, priority)"
            " SELECT 'n', 'm:f', i % 3 FROM generate_series(1, 2000) AS i"
        )
        await conn.execute("ANALYZE durable.tasks")
        plan = "\n".join(
            row[0]
            for row in await conn.fetch("EXPLAIN " + queries.CLAIM_TASKS, ["default"], 50, "w", 0.1)
        )
    finally:
        await conn.close()
    ready = plan[plan.index("CTE ready") :]
    assert "Index Scan using tasks_pending_idx" in ready, plan
    assert "Sort" not in ready.split("CTE Scan")[0].split("SubPlan")[0], plan
