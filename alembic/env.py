"""durable's alembic environment, run two ways.

- From durable (`durable migrate`, `durable-worker --migrate`, tests): durable.store.migrate
  passes an open connection in ``config.attributes["connection"]``, inside a transaction that
  already holds the migration advisory lock. env.py runs on it and leaves logging alone.
- From the developers' ``alembic`` command (alembic.ini at the repository root): no connection is
  passed, so env.py builds durable's asyncpg engine from ``DURABLE_DATABASE_URL`` and runs the
  same code through ``run_sync``; ``--sql`` renders the SQL offline.

No ``__init__.py`` may ever sit in this directory: with one, ``import alembic`` run from the
repository root would find this folder instead of the alembic library.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from durable.store.migrate import include_name, make_engine
from durable.store.schema import SCHEMA, metadata

config = context.config
target_metadata = metadata

# alembic_version lives in the durable schema too, so that durable touches nothing outside it.
VERSION_TABLE_SCHEMA = SCHEMA
CREATE_SCHEMA = f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'


def configure_options() -> dict[str, object]:
    return {
        "target_metadata": target_metadata,
        "version_table_schema": VERSION_TABLE_SCHEMA,
        # Autogenerate looks at the durable schema only (include_name filters the rest).
        "include_schemas": True,
        "include_name": include_name,
        "compare_type": True,
        "compare_server_default": True,
    }


def run_on_connection(connection: Connection) -> None:
    # The version table is created before the first migration runs, so its schema must exist
    # first. Executing this begins a transaction if none is open, and alembic then treats it as
    # the caller's: whoever opened the connection commits.
    connection.execute(text(CREATE_SCHEMA))
    context.configure(connection=connection, **configure_options())
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone(url: str) -> None:
    engine = make_engine(url)
    try:
        # begin(): commits what run_on_connection did, as durable.store.migrate does.
        async with engine.begin() as connection:
            await connection.run_sync(run_on_connection)
    finally:
        await engine.dispose()


def run_offline() -> None:
    context.configure(dialect_name="postgresql", literal_binds=True, **configure_options())
    with context.begin_transaction():
        context.execute(CREATE_SCHEMA)
        context.run_migrations()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on_connection(connection)
        return
    # Only the developers' alembic command gets here: configure its logging from alembic.ini.
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    if context.is_offline_mode():
        run_offline()
        return
    url = os.environ.get("DURABLE_DATABASE_URL")
    if not url:
        raise SystemExit("set DURABLE_DATABASE_URL to the database to migrate")
    asyncio.run(run_standalone(url))


main()
