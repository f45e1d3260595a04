"""Schedules (SPEC 12) with three real workers racing to fire the same ticks."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

import durable
from tests.helpers.processes import WorkerProcess, run_cli
from tests.helpers.waiting import poll_until

FLOW = "tests.acceptance.workflows_flow"


async def scheduled(conn: asyncpg.Connection, name: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, key, started_at, finished_at FROM durable.tasks WHERE key LIKE $1 ORDER BY key",
        f"schedule:{name}:%",
    )


async def test_three_workers_launch_each_tick_once(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    for _ in range(3):
        await workers().start()
    async with durable.Client(db_url) as client:
        await client.schedule("every-second", f"{FLOW}:stamp", cron="* * * * * *", overlap="allow")
        conn = await asyncpg.connect(db_url)
        try:
            await poll_until(
                lambda: _at_least(conn, "every-second", 5), "five ticks launched", timeout=20
            )
            await client.pause_schedule("every-second")
            tasks = await scheduled(conn, "every-second")
        finally:
            await conn.close()
        ticks = [datetime.fromisoformat(t["key"].split(":", 2)[2]) for t in tasks]
        assert len(ticks) == len(set(ticks))  # one task per tick
        for before, after in itertools.pairwise(ticks):
            assert after - before == timedelta(seconds=1)  # and no tick left out
        for task, tick in zip(tasks, ticks, strict=True):
            assert await client.result(task["id"], timeout=30) == tick.isoformat()


async def _at_least(conn: asyncpg.Connection, name: str, wanted: int) -> bool:
    return len(await scheduled(conn, name)) >= wanted


async def test_overlap_skip_never_runs_two_at_once(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    for _ in range(2):
        await workers().start()
    async with durable.Client(db_url) as client:
        await client.schedule(
            "slow", f"{FLOW}:slow_tick", cron="* * * * * *", args=[1.5], overlap="skip"
        )
        conn = await asyncpg.connect(db_url)
        try:
            await poll_until(lambda: _at_least(conn, "slow", 2), "two runs", timeout=20)
            await client.pause_schedule("slow")
            tasks = await scheduled(conn, "slow")
            for task in tasks:
                await client.result(task["id"], timeout=30)
            tasks = await scheduled(conn, "slow")
        finally:
            await conn.close()
    for before, after in itertools.pairwise(tasks):
        assert after["started_at"] >= before["finished_at"], (before, after)


async def test_cli_schedule_commands(db_url: str) -> None:
    added = await run_cli(
        db_url, "schedule", "add", "report", f"{FLOW}:stamp", "--cron", "0 2 * * *",
        "--tz", "Europe/Paris", "--overlap", "buffer_one", "--catch-up", "1h",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    listed = await run_cli(db_url, "schedule", "list", "--json")
    [report] = json.loads(listed.stdout)
    assert (report["timezone"], report["overlap"], report["catch_up"]) == (
        "Europe/Paris", "buffer_one", 3600.0,
    )  # fmt: skip
    assert datetime.fromisoformat(report["next_at"]).hour in (0, 1)  # 02:00 Paris in UTC
    for verb in ("pause", "resume", "trigger", "delete"):
        assert (await run_cli(db_url, "schedule", verb, "report")).code == 0
    unknown = await run_cli(db_url, "schedule", "pause", "report")
    assert unknown.code == 2 and "no schedule named 'report'" in unknown.stderr
    bad = await run_cli(db_url, "schedule", "add", "x", f"{FLOW}:stamp", "--cron", "nope")
    assert bad.code == 2
