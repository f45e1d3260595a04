"""Schema migrations from code: alembic without an ini file, on asyncpg.

durable ships its alembic environment inside the wheel as ``durable/_migrations`` (the top-level
``alembic/`` of the repository, force-included by hatch), so ``pip install durable-engine`` and
``durable-worker --migrate`` need no source checkout. `migrations_dir` finds it.

Everything runs on SQLAlchemy's async engine over asyncpg, alembic's async recipe: the command
runs in ``AsyncConnection.run_sync`` and ``env.py`` uses the connection it is handed. An env.py
calling ``asyncio.run`` would fail inside a running loop (the worker's ``--migrate``), and asyncpg
stays the only driver.

SQLAlchemy and alembic are imported inside the functions: importing this module stays cheap,
and only migrating pays for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from durable.config import MASK, mask_password
from durable.errors import DatabaseUnavailable, DurableError, SchemaOutdated
from durable.store import queries

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "MIGRATION_LOCK_KEY",
    "current_revision",
    "downgrade",
    "head_revision",
    "include_name",
    "is_at_head",
    "make_engine",
    "migrations_dir",
    "upgrade",
]

# Same value as durable.store.schema.SCHEMA, repeated so that this module does not import
# SQLAlchemy; the migration test checks the tables land there.
SCHEMA = "durable"

# pg_advisory_xact_lock key serialising upgrades per database: the ASCII bytes of "durable1".
# Several `durable-worker --migrate` starting together upgrade once; the others wait for the
# lock, then find the database at head.
MIGRATION_LOCK_KEY = 0x64_75_72_61_62_6C_65_31

# Seconds to wait for a connection before reporting the database as unavailable.
CONNECT_TIMEOUT = 10.0

# alembic's `context` and `op` are module-level proxies: two commands running at once in one
# process (two threads, or two coroutines whose run_sync greenlets interleave) would overwrite
# each other's. A threading.Lock covers both cases; see _process_lock for how it is taken.
_PROCESS_LOCK = threading.Lock()

_T = TypeVar("_T")


def migrations_dir() -> Path:
    """Return the directory holding durable's alembic environment (``env.py``, ``versions/``).

    Looks, in order, for ``_migrations`` inside the imported ``durable`` package (an installed
    wheel) and for ``alembic/`` beside the ``durable/`` directory (a checkout or an editable
    install, whose snapshot of ``_migrations`` is not where ``durable`` is imported from).
    Never depends on the current directory.

    Raises:
        DurableError: neither exists.
    """
    package = Path(__file__).resolve().parents[1]
    candidates = (package / "_migrations", package.parent / "alembic")
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    looked = " and ".join(str(c) for c in candidates)
    raise DurableError(
        f"durable's migrations are missing (looked for {looked}); reinstall durable-engine"
    )


def include_name(name: str | None, type_: str, parent_names: Mapping[Any, str | None]) -> bool:
    """alembic ``include_name`` filter: compare only the ``durable`` schema.

    With ``include_schemas=True`` autogenerate would otherwise report every table of the
    application sharing the database (and of ``public``) as one to drop.
    """
    if type_ == "schema":
        return name == SCHEMA
    return True


def make_engine(url: str) -> AsyncEngine:
    """Return a SQLAlchemy async engine over asyncpg for ``url``, without a connection pool.

    ``url`` is any URL asyncpg accepts (``postgresql://`` or ``postgres://``, ``?host=/dir`` for
    a unix socket, ``sslmode=``...). SQLAlchemy never parses it: asyncpg connects with it as
    given (``async_creator``), so the hot path and the migrations read a URL the same way, and
    no ``%`` needs escaping since the URL never enters alembic's ini-style config. A
    ``+driver`` suffix (``postgresql+asyncpg://``) is accepted and dropped.
    """
    import asyncpg
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    dsn = _asyncpg_dsn(url)

    async def connect() -> Any:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)

    # NullPool: a migration uses one connection once, and none may linger afterwards (a
    # database with open connections cannot serve as a CREATE DATABASE template, for one).
    return create_async_engine("postgresql+asyncpg://", async_creator=connect, poolclass=NullPool)


async def upgrade(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema revision (alembic ``head``).

    Safe to run any number of times and from several processes at once: the upgrade holds a
    Postgres advisory lock in its transaction, so one process upgrades and the others then find
    the database at head. Creates the ``durable`` schema if needed.

    Raises:
        DatabaseUnavailable: the database cannot be reached (the password is masked).
        DurableError: the database refused the migration (e.g. no privilege).
    """
    from alembic import command

    def upgrade_known(config: Config) -> None:
        _refuse_unknown_revision(config)
        command.upgrade(config, "head")

    await _run_command(url, "upgrade the schema", upgrade_known)


def _refuse_unknown_revision(config: Config) -> None:
    """SchemaOutdated if the database is at a revision this code does not ship (a newer one).

    Alembic would fail with "Can't locate revision": the database was migrated by a newer
    durable, and older code must neither touch nor run against it.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    connection = config.attributes["connection"]
    context = MigrationContext.configure(connection, opts={"version_table_schema": SCHEMA})
    current = context.get_current_revision()
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaOutdated(
            f"the database schema ({current}) is newer than this code "
            f"({head_revision()}): upgrade durable-engine; the schema was left as it is"
        )


async def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade the database at ``url`` to ``revision`` (default: drop every durable table).

    For tests and developers; durable itself never downgrades. The ``durable`` schema and its
    ``alembic_version`` table stay.

    Raises:
        DatabaseUnavailable: the database cannot be reached (the password is masked).
    """
    from alembic import command

    await _run_command(
        url, "downgrade the schema", lambda config: command.downgrade(config, revision)
    )


async def current_revision(url: str) -> str | None:
    """Return the database's schema revision, or None if durable's schema was never installed.

    Raises:
        DatabaseUnavailable: the database cannot be reached (the password is masked).
    """

    def read(connection: Connection) -> str | None:
        from alembic.runtime.migration import MigrationContext

        context = MigrationContext.configure(connection, opts={"version_table_schema": SCHEMA})
        return context.get_current_revision()

    return await _run_sync(url, "read the schema revision", read)


def head_revision() -> str:
    """Return the newest schema revision this code ships (alembic ``head``)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise DurableError(f"no migrations found in {migrations_dir()}")
    return head


async def is_at_head(url: str) -> bool:
    """Return True if the database at ``url`` is at the newest schema revision.

    Raises:
        DatabaseUnavailable: the database cannot be reached (the password is masked).
    """
    return await current_revision(url) == head_revision()


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    # Config values go through configparser interpolation: a "%" in the path must be doubled.
    config.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    if connection is not None:
        # env.py runs on this connection instead of building an engine of its own.
        config.attributes["connection"] = connection
    return config


async def _run_command(url: str, what: str, action: Callable[[Config], None]) -> None:
    def run(connection: Connection) -> None:
        from sqlalchemy import text

        # One transaction for lock and migration: Postgres DDL is transactional, so an upgrade
        # interrupted half-way leaves nothing behind, and the transaction-level advisory lock
        # is released by the commit (or by the server if this process dies).
        with connection.begin():
            connection.execute(text(queries.MIGRATION_LOCK), {"key": MIGRATION_LOCK_KEY})
            action(_config(connection))

    async with _process_lock():
        await _run_sync(url, what, run)


@contextlib.asynccontextmanager
async def _process_lock() -> AsyncIterator[None]:
    # Polled rather than a blocking acquire: the holder may be a coroutine of this very event
    # loop (its migration runs in this thread through run_sync), which a blocked thread would
    # never let finish. Contention needs two migrations in one process, so polling costs nothing
    # in practice, and a cancelled waiter leaves no lock behind.
    while not _PROCESS_LOCK.acquire(blocking=False):
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        _PROCESS_LOCK.release()


async def _run_sync(url: str, what: str, fn: Callable[[Connection], _T]) -> _T:
    from sqlalchemy.exc import DBAPIError

    engine = make_engine(url)
    connected = False
    try:
        async with engine.connect() as connection:
            connected = True
            return await connection.run_sync(fn)
    except DurableError:
        raise
    except Exception as exc:
        # Any failure to connect means unavailable (refused, timeout, bad password, no such
        # database, malformed URL); once connected only a lost connection does: a failing
        # migration must surface as itself.
        if not connected or _is_disconnect(exc):
            raise _unavailable(url, exc) from exc
        if isinstance(exc, DBAPIError):
            # e.g. no privilege to create the schema: a durable error the CLI can show in one
            # line, with SQLAlchemy's multi-line message kept as the cause.
            raise DurableError(
                f"could not {what} at {mask_password(url)}: {_reason(exc, url)}"
            ) from exc
        raise
    finally:
        await engine.dispose()


def _is_disconnect(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    # OSError covers refused and reset connections, and TimeoutError, its subclass.
    return isinstance(exc, OSError)


def _unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"cannot reach the database at {mask_password(url)}: {_reason(exc, url)}"
    )


def _reason(exc: BaseException, url: str) -> str:
    """One line naming the driver's error, with nothing of the password in it."""
    from sqlalchemy.exc import DBAPIError

    root: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        # SQLAlchemy's adapter error wraps asyncpg's, whose class names the problem.
        root = exc.orig.__cause__ or exc.orig
    lines = str(root).strip().splitlines()
    reason = f"{type(root).__name__}: {lines[0]}" if lines else type(root).__name__
    for secret in _passwords(url):
        reason = reason.replace(secret, MASK)
    return mask_password(reason)


def _passwords(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    if not password:
        return []
    return [p for p in {password, unquote(password)} if p]


def _asyncpg_dsn(url: str) -> str:
    # "postgresql+asyncpg://" is SQLAlchemy's spelling; asyncpg wants the plain scheme.
    return re.sub(r"^(postgres(?:ql)?)\+[A-Za-z0-9_]+://", r"\1://", url)
