"""Whole databases on a server: created from a template, dropped (test environments).

`durable.testing.WorkflowEnvironment` gives each environment a database of its own, copied
from a template migrated once per process: ``CREATE DATABASE ... TEMPLATE`` copies files and
takes tens of milliseconds, where migrating each database would take about a second.
Works with TCP URLs and the embedded server's unix-socket URLs (``?host=/dir``): only the
database name in the path changes.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit

from durable.store.pool import connect


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (any ``dbname``/``database`` query dropped)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("dbname", "database")]
    # Composed by hand: urlunsplit drops the "//" of an empty host (postgresql:///db?host=...).
    rebuilt = f"{parts.scheme}://{parts.netloc}/{name}"
    return f"{rebuilt}?{urlencode(query, safe='/')}" if query else rebuilt


def unique_name(prefix: str) -> str:
    """A database name nobody else uses: ``prefix`` and 12 random hex digits."""
    return f"{prefix}_{secrets.token_hex(6)}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(server_url: str, name: str, *, template: str | None = None) -> str:
    """Create database ``name`` (a copy of ``template``, which must have no open connection)
    and return its URL."""
    statement = f"CREATE DATABASE {_ident(name)}"
    if template is not None:
        statement += f" TEMPLATE {_ident(template)}"
    connection = await connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name``, ending its sessions."""
    connection = await connect(server_url)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
    finally:
        await connection.close()
