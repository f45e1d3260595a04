"""Throw-away databases on the test server: the library's own helpers
(durable/store/databases.py, which durable.testing uses too), and a block that drops one.

Works with TCP URLs and with the embedded server's unix-socket URLs (``?host=/dir``): only the
database name in the path changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from durable.store.databases import create_database, drop_database, unique_name, with_database

__all__ = [
    "create_database",
    "drop_database",
    "temporary_database",
    "unique_name",
    "with_database",
]


@contextlib.asynccontextmanager
async def temporary_database(
    server_url: str, prefix: str = "durable_t", *, template: str | None = None
) -> AsyncIterator[str]:
    """A fresh database for the duration of the block; yields its URL."""
    name = unique_name(prefix)
    url = await create_database(server_url, name, template=template)
    try:
        yield url
    finally:
        await drop_database(server_url, name)
