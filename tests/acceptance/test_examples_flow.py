"""The flow-control examples run (README "Flow control and schedules"), with real workers."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg

import durable
from tests.helpers.processes import REPO_ROOT, WorkerProcess, environment, run_cli


async def test_email_sender_one_at_a_time_per_user(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.txt"
    for _ in range(2):
        await workers("--queue", "emails").start()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.email_sender",
        cwd=REPO_ROOT, env=environment(db_url, {"EXAMPLE_OUTBOX": str(outbox)}),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    emails = [
        f"{user}: {subject}" for subject in ("Welcome", "Tips") for user in ("ana", "bo", "cy")
    ]
    assert process.returncode == 0 and out.decode().splitlines() == emails
    assert sorted(outbox.read_text().splitlines()) == sorted(emails)
    async with durable.Client(db_url) as client:
        [queue] = [q for q in await client.queues() if q.name == "emails"]
        ids = [t.id for t in await client.list_tasks(limit=100)]
    assert (queue.concurrency, queue.key_concurrency, queue.rate) == (10, 1, (20, 1.0))
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT concurrency_key, started_at, finished_at FROM durable.tasks"
            " WHERE id = ANY($1::bigint[]) ORDER BY concurrency_key, started_at",
            ids,
        )
    finally:
        await conn.close()
    for before, after in itertools.pairwise(rows):
        if before["concurrency_key"] == after["concurrency_key"]:
            assert after["started_at"] >= before["finished_at"]


async def test_nightly_report_registers_triggers_and_backfills(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.nightly_report",
        cwd=REPO_ROOT, env=environment(db_url), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 0 and out.decode().startswith("nightly-report: next run at ")
    listed = json.loads((await run_cli(db_url, "schedule", "list", "--json")).stdout)
    assert [(s["name"], s["cron"], s["timezone"]) for s in listed] == [
        ("nightly-report", "0 2 * * *", "Europe/Paris")
    ]
    await workers().start()
    filled = await run_cli(
        db_url, "schedule", "backfill", "nightly-report",
        "--from", "2026-12-01T00:00:00+01:00", "--to", "2026-12-03T00:00:00+01:00",
    )  # fmt: skip
    assert filled.code == 0, filled.stderr
    async with durable.Client(db_url) as client:
        results = [
            await client.result(int(task_id), timeout=30) for task_id in filled.stdout.split()
        ]
    # 02:00 in Paris on Dec 1 and 2 is 01:00 UTC on those days.
    assert results == [{"day": "2026-12-01", "status": "ok"}, {"day": "2026-12-02", "status": "ok"}]
