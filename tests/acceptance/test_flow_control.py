"""Flow control (SPEC 12) with real durable-worker processes racing for the same queues.

Limits are read back from the database while tasks run (the rows are the truth every worker
sees); each test would fail without its feature (e.g. three workers of concurrency 10 run far
more than 4 tasks at once when the cap is not enforced).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import asyncpg

import durable
from tests.helpers.processes import WorkerProcess, run_cli
from tests.helpers.waiting import poll_until

FLOW = "tests.acceptance.workflows_flow"


async def held_by_queue(conn: asyncpg.Connection, queue: str) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM durable.tasks WHERE queue = $1 AND state = 'running'", queue
    )


async def all_final(conn: asyncpg.Connection, ids: list[int]) -> bool:
    unfinished = await conn.fetchval(
        "SELECT count(*) FROM durable.tasks WHERE id = ANY($1::bigint[])"
        " AND state NOT IN ('complete', 'failed', 'cancelled')",
        ids,
    )
    return unfinished == 0


async def test_global_cap_is_never_exceeded_by_three_workers(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    async with durable.Client(db_url) as client:
        await client.configure_queue("capped", concurrency=4)
        for _ in range(3):
            await workers("--queue", "capped", "--concurrency", "10").start()
        ids = [
            (await client.launch(f"{FLOW}:work", args=[0.05], queue="capped")).id
            for _ in range(120)
        ]
        conn = await asyncpg.connect(db_url)
        try:
            samples = []
            deadline = time.monotonic() + 60
            while not await all_final(conn, ids):
                samples.append(await held_by_queue(conn, "capped"))
                assert time.monotonic() < deadline, "the tasks did not finish"
                await asyncio.sleep(0.005)
        finally:
            await conn.close()
        assert max(samples) == 4, max(samples)  # reached, never exceeded
        assert all([(await client.get(i)).state == "complete" for i in ids])


async def test_one_at_a_time_per_key_across_suspensions(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    async with durable.Client(db_url) as client:
        await client.configure_queue("keyed", key_concurrency=1)
        for _ in range(3):
            await workers("--queue", "keyed", "--concurrency", "10").start()
        keys = ["a", "a", "a", "b", "b"]
        ids = [
            (await client.launch(f"{FLOW}:wait_for_go", queue="keyed", concurrency_key=k)).id
            for k in keys
        ]
        conn = await asyncpg.connect(db_url)
        try:
            for round_no in range(
                3
            ):  # three rounds: a and b each have one task in flight at a time
                await poll_until(
                    lambda n=2 if round_no < 2 else 1: _suspended_count(conn, ids, n), "suspensions"
                )
                started = await conn.fetch(
                    "SELECT concurrency_key, count(*) AS n FROM durable.tasks"
                    " WHERE id = ANY($1::bigint[]) AND started_at IS NOT NULL"
                    " AND state NOT IN ('complete', 'failed', 'cancelled')"
                    " GROUP BY concurrency_key",
                    ids,
                )
                assert all(row["n"] == 1 for row in started), started
                for row in await conn.fetch(
                    "SELECT id FROM durable.tasks WHERE id = ANY($1::bigint[])"
                    " AND state = 'suspended'",
                    ids,
                ):
                    await client.resolve(f"go-{row['id']}", True)
            for task_id in ids:
                assert await client.result(task_id, timeout=30) == "done"
            rows = await conn.fetch(
                "SELECT concurrency_key, started_at, finished_at FROM durable.tasks"
                " WHERE id = ANY($1::bigint[]) ORDER BY concurrency_key, started_at",
                ids,
            )
        finally:
            await conn.close()
        for before, after in itertools.pairwise(rows):
            if before["concurrency_key"] == after["concurrency_key"]:
                assert after["started_at"] >= before["finished_at"], (before, after)


async def _suspended_count(conn: asyncpg.Connection, ids: list[int], wanted: int) -> bool:
    n = await conn.fetchval(
        "SELECT count(*) FROM durable.tasks WHERE id = ANY($1::bigint[]) AND state = 'suspended'",
        ids,
    )
    return bool(n == wanted)


async def test_rate_allows_n_starts_per_window(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    async with durable.Client(db_url) as client:
        await client.configure_queue("rated", rate=(2, 1.0))
        for _ in range(2):
            await workers("--queue", "rated", "--concurrency", "10").start()
        ids = [(await client.launch(f"{FLOW}:work", args=[0], queue="rated")).id for _ in range(6)]
        for task_id in ids:
            await client.result(task_id, timeout=30)
        starts = sorted([(await client.get(i)).started_at for i in ids])  # type: ignore[type-var]
    for first, third in zip(starts, starts[2:], strict=False):
        assert third - first >= timedelta(seconds=0.99), starts


async def test_priority_order_and_pause_resume(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    async with durable.Client(db_url) as client:
        await client.configure_queue("ordered", paused=True)
        await workers("--queue", "ordered", "--concurrency", "1").start()
        priorities = [3, 1, 2, 1, 0]
        ids = [
            (await client.launch(f"{FLOW}:work", args=[0], queue="ordered", priority=p)).id
            for p in priorities
        ]
        conn = await asyncpg.connect(db_url)
        try:
            # Paused: a heartbeat round (0.2 s) and more pass, and nothing starts.
            await asyncio.sleep(0.6)
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM durable.tasks WHERE queue = 'ordered'"
                    " AND started_at IS NOT NULL"
                )
                == 0
            )
        finally:
            await conn.close()
        await client.configure_queue("ordered", paused=False)
        for task_id in ids:
            await client.result(task_id, timeout=30)
        infos = [await client.get(i) for i in ids]
    by_start = [info.id for info in sorted(infos, key=lambda i: i.started_at)]  # type: ignore[arg-type, return-value]
    assert by_start == [ids[4], ids[1], ids[3], ids[2], ids[0]]


async def test_debounce_runs_one_task_with_the_last_arguments(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    async with durable.Client(db_url) as client:
        await workers("--queue", "bursty").start()
        handles = [
            await client.launch(
                f"{FLOW}:echo",
                args=[n],
                queue="bursty",
                debounce=durable.Debounce("user-42", delay=0.5, max_delay=5),
            )
            for n in range(5)
        ]
        assert len({h.id for h in handles}) == 1
        assert await client.result(handles[0].id, timeout=30) == [4]
        info = await client.get(handles[0].id)
        assert info.started_at is not None
        assert info.started_at - info.created_at >= timedelta(seconds=0.5)


async def test_slots_come_back_after_kill_9_within_the_lease(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with durable.Client(db_url) as client:
        await client.configure_queue("fragile", concurrency=2)
        doomed = await workers("--queue", "fragile", "--concurrency", "10").start()
        ids = [
            (await client.launch(f"{FLOW}:gated", args=[str(gate)], queue="fragile")).id
            for _ in range(4)
        ]
        conn = await asyncpg.connect(db_url)
        try:
            await poll_until(lambda: _held_is(conn, "fragile", 2), "two slots taken")
            doomed.signal(signal.SIGKILL)
            await doomed.wait()
            assert await held_by_queue(conn, "fragile") == 2  # held by a dead worker
            gate.touch()
            await workers("--queue", "fragile", "--concurrency", "10").start()
            for task_id in ids:  # lease timeout 1.5 s: well within 30 s
                assert await client.result(task_id, timeout=30) == "done"
        finally:
            await conn.close()


async def _held_is(conn: asyncpg.Connection, queue: str, wanted: int) -> bool:
    return bool(await held_by_queue(conn, queue) == wanted)


async def test_cli_queue_set_and_list(db_url: str) -> None:
    changed = await run_cli(
        db_url, "queue", "set", "emails", "--concurrency", "10", "--key-concurrency", "1",
        "--rate", "100/60", "--pause",
    )  # fmt: skip
    assert changed.code == 0, changed.stderr
    assert (await run_cli(db_url, "queue", "set", "emails", "--concurrency", "none")).code == 0
    assert (await run_cli(db_url, "queue", "set", "emails", "--resume")).code == 0
    listed = json.loads((await run_cli(db_url, "queue", "list", "--json")).stdout)
    assert listed == [
        {"name": "emails", "concurrency": None, "key_concurrency": 1, "rate": [100, 60.0],
         "paused": False, "pending": 0, "running": 0, "suspended": 0},
    ]  # fmt: skip
    bad = await run_cli(db_url, "queue", "set", "emails", "--rate", "ten/minute")
    assert bad.code == 2 and "N/SECONDS" in bad.stderr
    launched = await run_cli(
        db_url, "launch", "--queue", "emails", "--priority", "-3", "--concurrency-key", "ana",
        "hi", f"{FLOW}:echo",
    )  # fmt: skip
    async with durable.Client(db_url) as client:
        conn = await asyncpg.connect(db_url)
        try:
            row = await conn.fetchrow(
                "SELECT priority, concurrency_key FROM durable.tasks WHERE id = $1",
                int(launched.stdout),
            )
        finally:
            await conn.close()
        assert (await client.get(int(launched.stdout))).queue == "emails"
    assert (row["priority"], row["concurrency_key"]) == (-3, "ana")
