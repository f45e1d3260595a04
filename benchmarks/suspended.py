"""W6: many workflows suspended on timers: worker memory while they wait, lateness when they fire.

    python -m benchmarks.suspended [--tasks 10000] [--sleep 60] [--database-url URL]

Creates a fresh database on the server (default: $DURABLE_TEST_DATABASE_URL, else the local
server), launches the tasks, starts one `durable-worker` process, waits until every task is
suspended, reads the worker's resident memory (VmRSS), then waits for all timers to fire and
prints the lateness percentiles (time between a timer's deadline and the workflow resuming).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg

import durable

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def fresh_database(server: str, name: str) -> str:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = server.rpartition("/")
    url = f"{base}/{name}"
    await durable.Client(url, check_schema=False).migrate()
    return url


async def count_states(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT state, count(*) FROM durable.tasks GROUP BY state")
    finally:
        await conn.close()
    return {row["state"]: row["count"] for row in rows}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--sleep", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DURABLE_TEST_DATABASE_URL", DEFAULT_SERVER),
        help="server to create the benchmark database on",
    )
    options = parser.parse_args()
    url = await fresh_database(options.database_url, "durable_bench_w6")
    env = dict(os.environ, DURABLE_DATABASE_URL=url, PYTHONPATH=f"{ROOT}:{ROOT / 'cli'}")
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "durable_cli.worker", "--concurrency", str(options.concurrency),
        "--log-level", "warning", cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        async with durable.Client(url) as client:
            started = time.monotonic()
            ids = []
            for _ in range(options.tasks):
                task = await client.launch("benchmarks.workflows:sleep_once", args=[options.sleep])
                ids.append(task.id)
            launched = time.monotonic() - started
            while (await count_states(url)).get("suspended", 0) < options.tasks:
                if time.monotonic() - started > options.sleep:
                    raise SystemExit("not every task suspended before the timers were due")
                await asyncio.sleep(0.5)
            suspended_at = time.monotonic() - started
            rss = rss_mb(worker.pid)
            lateness = [await client.result(i, timeout=options.sleep + 600) for i in ids]
        lateness.sort()
        p50 = statistics.median(lateness)
        p99 = lateness[int(len(lateness) * 0.99) - 1]
        print(f"tasks                     {options.tasks}")
        print(f"launched in               {launched:.1f} s")
        print(f"all suspended after       {suspended_at:.1f} s")
        print(f"worker RSS, all suspended {rss:.1f} MB")
        print(f"timer lateness p50        {p50 * 1000:.0f} ms")
        print(f"timer lateness p99        {p99 * 1000:.0f} ms")
        print(f"timer lateness max        {lateness[-1] * 1000:.0f} ms")
    finally:
        worker.terminate()
        await worker.wait()


if __name__ == "__main__":
    asyncio.run(main())
