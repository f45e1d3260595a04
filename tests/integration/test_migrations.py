"""The alembic migrations against schema.py, and running them from code."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from durable.errors import DatabaseUnavailable
from durable.store import migrate
from durable.store.migrate import (
    MIGRATION_LOCK_KEY,
    current_revision,
    downgrade,
    head_revision,
    include_name,
    is_at_head,
    make_engine,
    migrations_dir,
    upgrade,
)
from durable.store.revision import SCHEMA_REVISION
from durable.store.schema import SCHEMA, metadata
from tests.helpers.db import temporary_database

REPO = Path(__file__).resolve().parents[2]

# Everything that makes two schemas different, read from the catalogs. alembic's comparison
# below does not look at an index's WHERE clause, nor at constraint names or identity columns;
# pg_get_indexdef / pg_get_constraintdef do.
CATALOG_QUERIES = {
    "columns": """
        SELECT table_name, ordinal_position, column_name, data_type, udt_name, is_nullable,
               column_default, is_identity, identity_generation
        FROM information_schema.columns
        WHERE table_schema = $1 AND table_name <> 'alembic_version'
        ORDER BY 1, 2""",
    "constraints": """
        SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname <> 'alembic_version'
        ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef
        FROM pg_indexes
        WHERE schemaname = $1 AND tablename <> 'alembic_version'
        ORDER BY 1, 2""",
    "sequences": """
        SELECT sequencename, data_type, start_value, increment_by, cycle
        FROM pg_sequences WHERE schemaname = $1
        ORDER BY 1""",
}

UPGRADE_IN_A_PROCESS = (
    "import asyncio, sys; from durable.store.migrate import upgrade; "
    "asyncio.run(upgrade(sys.argv[1]))"
)


async def catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    connection = await asyncpg.connect(url)
    try:
        return {
            name: [tuple(row) for row in await connection.fetch(query, SCHEMA)]
            for name, query in CATALOG_QUERIES.items()
        }
    finally:
        await connection.close()


async def run_sync(url: str, fn: Callable[[Connection], Any], *, commit: bool = False) -> Any:
    engine = make_engine(url)
    try:
        async with engine.begin() if commit else engine.connect() as connection:
            return await connection.run_sync(fn)
    finally:
        await engine.dispose()


def autogenerate_diff(connection: Connection) -> list[Any]:
    """What `alembic revision --autogenerate` would write: the database versus schema.py."""
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": include_name,
            "version_table_schema": SCHEMA,
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    return list(compare_metadata(context, metadata))


def create_all(connection: Connection) -> None:
    connection.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    metadata.create_all(connection)


async def version_rows(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(f'SELECT version_num FROM "{SCHEMA}".alembic_version')
    finally:
        await connection.close()
    return [row["version_num"] for row in rows]


async def test_upgrade_gives_the_schema_declared_in_schema_py(
    empty_db_url: str, database_server_url: str
) -> None:
    # The comparison sees a difference when there is one: every table is missing at first.
    missing = await run_sync(empty_db_url, autogenerate_diff)
    assert sorted(op[1].name for op in missing if op[0] == "add_table") == sorted(
        table.name for table in metadata.tables.values()
    )

    await upgrade(empty_db_url)

    assert await run_sync(empty_db_url, autogenerate_diff) == []
    async with temporary_database(database_server_url, "durable_ca") as declared_url:
        await run_sync(declared_url, create_all, commit=True)
        migrated, declared = await catalog(empty_db_url), await catalog(declared_url)
    assert migrated == declared
    indexes = {name: definition for _, name, definition in migrated["indexes"]}
    assert "WHERE (state = 'pending'::text)" in indexes["tasks_pending_idx"]
    assert "WHERE (consumed_seq IS NULL)" in indexes["notifications_mailbox_idx"]


async def test_upgrade_twice_changes_nothing(db_url: str) -> None:
    before = await catalog(db_url)

    await upgrade(db_url)

    assert await catalog(db_url) == before
    assert await version_rows(db_url) == [head_revision()]
    assert await is_at_head(db_url)


async def test_two_processes_upgrading_at_once_both_succeed(empty_db_url: str) -> None:
    database = urlsplit(empty_db_url).path.lstrip("/")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "cli")])}
    holder = await asyncpg.connect(empty_db_url)
    try:
        # Hold the migration lock so that both processes are provably inside upgrade() at the
        # same time, queued on the lock, before either may proceed.
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                UPGRADE_IN_A_PROCESS,
                empty_db_url,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        await wait_until(lambda: lock_waiters(holder, database), 2, processes)
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        outputs = [await process.communicate() for process in processes]
    finally:
        await holder.close()

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
    assert await version_rows(empty_db_url) == [head_revision()]
    assert await run_sync(empty_db_url, autogenerate_diff) == []


async def test_concurrent_upgrades_in_one_process_do_not_mix(database_server_url: str) -> None:
    # alembic keeps the running migration in module-level proxies; the upgrades of different
    # databases (no shared advisory lock) interleave at every await unless upgrade() serialises
    # them in the process.
    async with contextlib.AsyncExitStack() as stack:
        urls = [
            await stack.enter_async_context(temporary_database(database_server_url, "durable_e"))
            for _ in range(3)
        ]

        await asyncio.gather(*(upgrade(url) for url in urls))

        assert [await current_revision(url) for url in urls] == [head_revision()] * 3


async def lock_waiters(connection: asyncpg.Connection, database: str) -> int:
    # A bigint advisory key shows in pg_locks as classid (high half) and objid (low half).
    count: int = await connection.fetchval(
        """
        SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
        WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = $1
          AND l.classid::bigint = $2 AND l.objid::bigint = $3 AND l.objsubid = 1
        """,
        database,
        MIGRATION_LOCK_KEY >> 32,
        MIGRATION_LOCK_KEY & 0xFFFFFFFF,
    )
    return count


async def wait_until(
    probe: Callable[[], Awaitable[int]],
    expected: int,
    processes: list[asyncio.subprocess.Process],
    timeout: float = 30.0,
) -> None:
    """Poll ``probe`` until it returns ``expected``; fail early if a process has exited."""
    async with asyncio.timeout(timeout):
        while await probe() != expected:
            for process in processes:
                if process.returncode is not None:
                    _, stderr = await process.communicate()
                    pytest.fail(f"upgrade process exited early: {stderr.decode()}")
            # A lock queue in pg_locks announces nothing: a bounded poll is the wait.
            await asyncio.sleep(0.02)


def test_revision_and_schema_constants_agree_with_alembic_and_schema_py() -> None:
    assert SCHEMA_REVISION == head_revision()
    assert migrate.SCHEMA == SCHEMA


async def test_downgrade_to_base_then_upgrade(db_url: str) -> None:
    migrated = await catalog(db_url)

    await downgrade(db_url, "base")

    assert await current_revision(db_url) is None
    assert await catalog(db_url) == {name: [] for name in CATALOG_QUERIES}

    await upgrade(db_url)

    assert await current_revision(db_url) == head_revision()
    assert await catalog(db_url) == migrated


@pytest.mark.parametrize("call", [upgrade, current_revision, is_at_head])
async def test_unreachable_database_is_reported_without_the_password(
    call: Callable[[str], Awaitable[object]],
) -> None:
    url = "postgresql://durable:s3cret@127.0.0.1:1/durable"

    with pytest.raises(DatabaseUnavailable) as caught:
        await call(url)

    message = str(caught.value)
    assert "s3cret" not in message
    assert "postgresql://durable:***@127.0.0.1:1/durable" in message
    assert "\n" not in message


def test_migrations_are_found_beside_the_package_in_a_checkout() -> None:
    assert migrations_dir() == REPO / "alembic"
    # An __init__.py there would shadow the alembic library when run from the repository root.
    assert not list((REPO / "alembic").rglob("__init__.py"))


def test_importing_migrate_loads_neither_sqlalchemy_nor_alembic() -> None:
    code = (
        "import sys, durable.store.migrate; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'alembic'}))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
