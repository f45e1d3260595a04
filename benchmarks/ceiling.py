"""L: the ceiling for "one commit per step": pgbench, one single-row INSERT per transaction.

    python -m benchmarks.ceiling --clients 50 [--seconds 5] [--notify] [--server URL]

On a fresh database with one table ``t (id bigserial PRIMARY KEY, v int)``, pgbench runs the
script ``INSERT INTO t (v) VALUES (1);`` (each execution its own transaction, so one commit,
with synchronous_commit as the server has it) from ``--clients`` connections for ``--seconds``
seconds, with prepared statements, and reports transactions per second. A durable step costs at
least one such commit, so this bounds steps/s on this machine at that client count. With
``--notify`` each transaction also runs ``pg_notify`` (LN: the ceiling for notifying commits).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import asyncpg

from benchmarks.common import DEFAULT_SERVER, Result, database_url, log

DATABASE = "bench_pgbench"
SCRIPT = "INSERT INTO t (v) VALUES (1);\n"
# The same commit, announced with NOTIFY as durable's launches and final writes are: Postgres
# takes one global lock at the commit of any transaction that notified and holds it until the
# commit record is flushed, so these commits queue one behind the other.
NOTIFY_SCRIPT = """BEGIN;
INSERT INTO t (v) VALUES (1);
SELECT pg_notify('bench_ceiling', 'default');
COMMIT;
"""


def find_pgbench(explicit: str | None) -> str:
    """``--pgbench``, else pgbench on PATH, else the newest /usr/lib/postgresql/*/bin/pgbench."""
    if explicit:
        return explicit
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pgbench"), key=lambda p: int(p.parts[-3])
    )
    if not candidates:
        raise FileNotFoundError("pgbench not found: pass --pgbench PATH")
    return str(candidates[-1])


async def fresh_table(server: str) -> str:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()
    url = database_url(server, DATABASE)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE t (id bigserial PRIMARY KEY, v int)")
    finally:
        await conn.close()
    return url


def run_pgbench(pgbench: str, url: str, clients: int, seconds: float, notify: bool) -> float:
    """Transactions per second that pgbench reports."""
    parts = urlparse(url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(NOTIFY_SCRIPT if notify else SCRIPT)
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = parts.password
    argv = [
        pgbench, "--no-vacuum", "--protocol=prepared",
        "--file", script.name,
        "--client", str(clients), "--jobs", str(min(clients, os.cpu_count() or 1)),
        "--time", str(max(1, round(seconds))),
        "--host", parts.hostname or "127.0.0.1",
        "--port", str(parts.port or 5432),
        "--username", parts.username or "postgres",
        parts.path.lstrip("/"),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    finally:
        os.unlink(script.name)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-500:]}")
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    if match is None:
        raise RuntimeError(f"no tps in pgbench's output: {done.stdout[-500:]}")
    return float(match.group(1))


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--pgbench", default=None)
    parser.add_argument("--notify", action="store_true", help="each transaction also NOTIFYs")
    options = parser.parse_args()
    result = Result("postgres", "LN" if options.notify else "L")
    try:
        pgbench = find_pgbench(options.pgbench)
        url = await fresh_table(options.server)
        try:
            result.metrics["tps"] = await asyncio.to_thread(
                run_pgbench, pgbench, url, options.clients, options.seconds, options.notify
            )
        finally:
            conn = await asyncpg.connect(options.server)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            finally:
                await conn.close()
        result.info.update(
            clients=options.clients, seconds=options.seconds, notify=options.notify, pgbench=pgbench
        )
    except Exception as error:
        log(f"L: {type(error).__name__}: {error}")
        result.error = f"{type(error).__name__}: {error}"
    result.emit()


if __name__ == "__main__":
    asyncio.run(main())
