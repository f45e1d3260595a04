"""The task list and the scrape-time gauges stay index scans with a million finished tasks.

One database is filled once with 1,000,000 finished tasks (generate_series, one statement)
plus a handful of live ones, analysed, and every statement the server runs for a list page
or a scrape is run under ``EXPLAIN (ANALYZE, FORMAT JSON)``: no sequential scan of the tasks
table, and the rows its scans touch stay near the page size, not the table size.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from durable.store import queries

ROWS = 1_000_000
PAGE = 50


@pytest.fixture(scope="module")
async def big_db(database_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A database with a million finished tasks (shared by this module's tests)."""
    from tests.helpers.db import temporary_database

    async with temporary_database(database_server_url, template=template_database) as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET synchronous_commit = off")
            # Old finished tasks spread over 50 workflows, 10 queues and 1,000 names, the
            # newest a day ago; then a few live tasks launched now.
            await conn.execute(
                f"""
                INSERT INTO durable.tasks (name, workflow, queue, state, created_at,
                                           started_at, finished_at, attempts)
                SELECT 'order ' || (i % 1000), 'shop.flows:wf' || (i % 50), 'q' || (i % 10),
                       (ARRAY['complete','complete','complete','failed','cancelled'])[i % 5 + 1],
                       ts, ts, ts, 1
                FROM generate_series(1, {ROWS}) AS i,
                     LATERAL (SELECT now() - interval '1 day'
                                     - make_interval(secs => ({ROWS} - i)) AS ts) AS t
                """
            )
            await conn.execute(
                """
                INSERT INTO durable.tasks (name, workflow, queue, state)
                SELECT 'live ' || i, 'shop.flows:live', 'rare', s
                FROM generate_series(1, 30) AS i,
                     unnest(ARRAY['pending', 'running', 'suspended']) AS s
                """
            )
            await conn.execute("ANALYZE durable.tasks")
        finally:
            await conn.close()
        yield url


async def _plan(url: str, statement: str, *args: Any) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        text = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", *args)
    finally:
        await conn.close()
    plan: dict[str, Any] = json.loads(text)[0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


def _check(plan: dict[str, Any], index: str | tuple[str, ...] | None, max_rows: int) -> None:
    nodes = _nodes(plan)
    types = [n["Node Type"] for n in nodes]
    assert "Seq Scan" not in types, types
    scans = [n for n in nodes if "Index" in n["Node Type"]]
    assert scans, types
    if index is not None:
        names = {n.get("Index Name") for n in scans}
        wanted = (index,) if isinstance(index, str) else index
        assert names & set(wanted), sorted(str(name) for name in names)
    touched = sum(n["Actual Rows"] * n.get("Actual Loops", 1) for n in scans)
    touched += sum(n.get("Rows Removed by Filter", 0) for n in scans)
    assert touched <= max_rows, (touched, types)


# A value that few rows have must be found through its own index: walking the primary key
# backwards and filtering would read the whole table before it filled a page.
RARE = [
    ((), (), "tasks_pkey"),
    # Pending tasks also have the claim's partial index, which holds nothing else: either
    # reads only pending rows.
    (("state",), ("pending",), ("tasks_state_idx", "tasks_pending_idx")),
    (("workflow",), ("shop.flows:live",), "tasks_workflow_idx"),
    (("queue",), ("rare",), "tasks_queue_idx"),
    (("name",), ("live 7",), "tasks_name_idx"),
    (("since",), ("recent",), "tasks_created_idx"),
    (("before",), (500_000,), "tasks_pkey"),
    (("queue", "before"), ("rare", 2_000_000), "tasks_queue_idx"),
]

# A common value (a fifth, a tenth, a fiftieth of the table) may be served by walking the
# primary key newest first and filtering, which Postgres prefers and which reads about
# page / frequency rows; either way the page costs thousands of rows, not a million.
COMMON = [
    (("state",), ("failed",)),
    (("workflow",), ("shop.flows:wf7",)),
    (("queue",), ("q3",)),
    (("name",), ("order 12",)),
    (("state", "before"), ("complete", 500_000)),
    (("queue", "workflow"), ("q3", "shop.flows:wf13")),
]


@pytest.mark.parametrize(("filters", "values", "index"), RARE)
async def test_a_rare_filter_reads_one_page_of_its_index(
    big_db: str, filters: tuple[str, ...], values: tuple[Any, ...], index: str | tuple[str, ...]
) -> None:
    if values == ("recent",):
        values = (datetime.now(UTC) - timedelta(hours=1),)
    plan = await _plan(big_db, queries.task_page(filters), *values, PAGE)
    _check(plan, index, max_rows=4 * PAGE)


@pytest.mark.parametrize(("filters", "values"), COMMON)
async def test_a_common_filter_reads_thousands_of_rows_not_the_table(
    big_db: str, filters: tuple[str, ...], values: tuple[Any, ...]
) -> None:
    plan = await _plan(big_db, queries.task_page(filters), *values, PAGE)
    _check(plan, None, max_rows=60 * PAGE)


async def test_scrape_gauges_read_only_live_tasks(big_db: str) -> None:
    _check(await _plan(big_db, queries.LIVE_TASK_COUNTS), "tasks_state_idx", max_rows=200)
    _check(await _plan(big_db, queries.OLDEST_PENDING), None, max_rows=200)
