"""Shared fixtures: a real PostgreSQL, a migrated template per session, a clone per test.

The server is ``DURABLE_TEST_DATABASE_URL`` if set, else durable's embedded default server kept
in a per-user cache directory (never the user's real ``DURABLE_HOME``); it is left running for
the next run, as the embedded server always is.

Once per session the schema is migrated into a template database (a unique name, so that
concurrent sessions do not collide); each test that asks for ``db_url`` gets its own
``CREATE DATABASE ... TEMPLATE`` copy, dropped afterwards. Copying a migrated template takes
milliseconds, where migrating each database would take much longer. Tests do not run inside a
rolled-back transaction instead: NOTIFY is delivered only on commit, and the worker, the
client and the listener each use connections of their own.

Async tests and fixtures run on uvloop, the loop durable-worker runs on.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping

import platformdirs
import pytest

from durable.store.migrate import upgrade
from tests.helpers.db import create_database, drop_database, temporary_database, unique_name

# Where the embedded test server keeps its data when no test database URL is given.
EMBEDDED_TEST_HOME = platformdirs.user_cache_path("durable") / "test-server"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every async test and fixture on uvloop (pytest-asyncio's loop factory hook).

    The hook replaces the ``event_loop_policy`` fixture, deprecated since pytest-asyncio 1.4
    (as are event loop policies themselves since Python 3.14).
    """
    if sys.platform == "win32":  # pragma: no cover - uvloop does not exist there
        return {"asyncio": asyncio.new_event_loop}
    import uvloop

    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def database_server_url() -> str:
    """URL of the PostgreSQL server the tests create their databases on."""
    configured = os.environ.get("DURABLE_TEST_DATABASE_URL")
    if configured:
        return configured
    from durable.store.embedded import ensure_server

    return ensure_server(EMBEDDED_TEST_HOME)


@pytest.fixture(scope="session")
async def template_database(database_server_url: str) -> AsyncIterator[str]:
    """Name of a database migrated to head, to copy for each test; dropped at session end."""
    name = unique_name(f"durable_tpl_{os.getpid()}")
    url = await create_database(database_server_url, name)
    try:
        # upgrade() disposes of its engine: no connection is left open on the template,
        # which Postgres requires of a database it copies.
        await upgrade(url)
        yield name
    finally:
        await drop_database(database_server_url, name)


@pytest.fixture
async def db_url(database_server_url: str, template_database: str) -> AsyncIterator[str]:
    """URL of a fresh database at schema head, for this test only."""
    async with temporary_database(database_server_url, template=template_database) as url:
        yield url


@pytest.fixture
async def empty_db_url(database_server_url: str) -> AsyncIterator[str]:
    """URL of a fresh database without durable's schema, for this test only."""
    async with temporary_database(database_server_url, "durable_e") as url:
        yield url
