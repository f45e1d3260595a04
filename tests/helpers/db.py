"""Throw-away databases on the test server, created and dropped with asyncpg.

Works with TCP URLs and with the embedded server's unix-socket URLs (``?host=/dir``): only the
database name in the path changes.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit

import asyncpg


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` (any ``dbname``/``database`` query dropped)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("dbname", "database")]
    # Composed by hand: urlunsplit drops the "//" of an empty host (postgresql:///db?host=...).
    rebuilt = f"{parts.scheme}://{parts.netloc}/{name}"
    return f"{rebuilt}?{urlencode(query, safe='/')}" if query else rebuilt


def unique_name(prefix: str) -> str:
    """A database name nobody else uses: ``prefix`` and 12 random hex digits."""
    return f"{prefix}_{secrets.token_hex(6)}"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(server_url: str, name: str, *, template: str | None = None) -> str:
    """Create database ``name`` (a copy of ``template`` if given) and return its URL.

    The template must have no open connection: Postgres refuses to copy a database in use.
    """
    sql = f"CREATE DATABASE {quote_ident(name)}"
    if template is not None:
        sql += f" TEMPLATE {quote_ident(template)}"
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name``, ending its sessions (a worker a test left behind, say)."""
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        await connection.close()


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
