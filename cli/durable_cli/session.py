"""Running a command's coroutine on uvloop, with a `durable.Client` for the chosen database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import click

import durable
from durable_cli.options import database_url

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on uvloop (plain asyncio where uvloop is not installed)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result


@contextlib.asynccontextmanager
async def connect(ctx: click.Context) -> AsyncIterator[durable.Client]:
    """A connected `durable.Client` for the database chosen on the command line.

    Raises:
        durable.DatabaseUnavailable: the database cannot be reached.
        durable.SchemaOutdated: its schema is older than this code.
    """
    async with durable.Client(database_url(ctx)) as client:
        yield client


def schema_client(ctx: click.Context) -> durable.Client:
    """An unconnected client for schema work (``migrate``): it does not check the schema."""
    return durable.Client(database_url(ctx), check_schema=False)
