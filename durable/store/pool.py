"""The asyncpg pool and the translation of driver errors into durable errors."""

from __future__ import annotations

import socket
from types import TracebackType

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


# How a connection notices a peer that vanished without a word (a NAT or firewall that dropped
# its flow, a server host that lost power): no FIN or RST ever arrives, so without these a
# statement waits for its reply forever, and a write retransmits for ~15 minutes. Keepalive
# probes after KEEPALIVE_IDLE s of silence, every KEEPALIVE_INTERVAL s, KEEPALIVE_PROBES times,
# then the connection fails (and the worker reconnects); they also keep idle flows alive in
# NAT tables. TCP_USER_TIMEOUT fails a connection whose sent data stays unacknowledged that
# long. A busy server still acknowledges and answers probes, so long statements are unaffected.
KEEPALIVE_IDLE = 10
KEEPALIVE_INTERVAL = 5
KEEPALIVE_PROBES = 3
USER_TIMEOUT_MS = 30_000


def detect_dead_peers(connection: asyncpg.Connection) -> None:
    """Turn on TCP keepalive and a user timeout on ``connection``'s socket (TCP only)."""
    transport = getattr(connection, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a unix socket has no network in between
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
        ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS),
    ):
        if hasattr(socket, option):  # Linux has them all; other systems some
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


async def _on_new_connection(connection: asyncpg.Connection) -> None:
    """Pool ``init``: runs once for each connection the pool opens."""
    detect_dead_peers(connection)


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


def malformed(error: ValueError) -> DatabaseUnavailable:
    """A one-line DatabaseUnavailable for a URL that does not parse (the URL is not shown:
    masking its password needs it to parse)."""
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return DatabaseUnavailable(f"invalid database URL: {reason}")


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
            init=_on_new_connection,
        )
    except CONNECTION_ERRORS as error:
        raise unavailable(url, error) from error
    except ValueError as error:  # the URL itself does not parse (or names a bad option)
        raise malformed(error) from error
    assert pool is not None
    return pool


async def connect(url: str) -> asyncpg.Connection:
    """One plain connection (used by LISTEN), errors translated like create_pool."""
    try:
        connection = await asyncpg.connect(
            url, timeout=10, server_settings={"application_name": "durable-listen"}
        )
    except CONNECTION_ERRORS as error:
        raise unavailable(url, error) from error
    except ValueError as error:
        raise malformed(error) from error
    detect_dead_peers(connection)
    return connection


class Translated:
    """``async with``: connection-level driver errors inside the block become
    DatabaseUnavailable (one line, password masked, the driver's error as ``__cause__``).

    Stateless, so one instance serves every use. A class rather than an
    ``@asynccontextmanager``: it wraps every round trip, and a generator-based one costs about
    2.7 µs per use here against 1 µs for this (a bare ``try``: 0.2 µs; a round trip: 100 µs
    or more).
    """

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, CONNECTION_ERRORS):
            raise unavailable(self.url, exc) from exc
