"""The asyncpg pool and the translation of driver errors into durable errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from durable.config import mask_password
from durable.errors import DatabaseUnavailable

# Errors that mean "the database is not there (any more)", as opposed to a bad statement.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    # After pg_terminate_backend an idle pooled connection can fail with "cannot switch to
    # state ..." (asyncpg issues 784 and 1069); the pool drops it, and a retry gets a new one.
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
    TimeoutError,
)


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Release a pooled connection without the default reset query.

    asyncpg's default runs ``RESET ALL; UNLISTEN *; ...`` on every release: a round trip per
    statement on the hot path. durable leaves no session state on pooled connections (LISTEN
    has its own connection, advisory locks are transaction-scoped, nothing is SET), and the
    pool still rolls back a transaction left open before calling this.
    """


def unavailable(url: str, error: BaseException) -> DatabaseUnavailable:
    """A one-line DatabaseUnavailable for ``url`` (password masked) caused by ``error``."""
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return DatabaseUnavailable(f"cannot reach the database at {mask_password(url)}: {reason}")


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open a pool to ``url``; raise DatabaseUnavailable (one line, masked) if it cannot."""
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=10,
            command_timeout=None,
            server_settings={"application_name": "durable"},
            reset=_keep_session,
        )
    except CONNECTION_ERRORS as error:
        raise unavailable(url, error) from error
    assert pool is not None
    return pool


async def connect(url: str) -> asyncpg.Connection:
    """One plain connection (used by LISTEN), errors translated like create_pool."""
    try:
        return await asyncpg.connect(
            url, timeout=10, server_settings={"application_name": "durable-listen"}
        )
    except CONNECTION_ERRORS as error:
        raise unavailable(url, error) from error


@contextlib.asynccontextmanager
async def translated(url: str) -> AsyncIterator[None]:
    """Turn connection-level driver errors inside the block into DatabaseUnavailable."""
    try:
        yield
    except CONNECTION_ERRORS as error:
        raise unavailable(url, error) from error


def record_dict(record: Any) -> dict[str, Any]:
    """An asyncpg Record as a plain dict."""
    return dict(record.items())
