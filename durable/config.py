"""Where durable's database and data live, and how a database URL is shown.

The database URL is resolved the same way by the CLI, the worker and the client: an explicit
value, else ``DURABLE_DATABASE_URL``, else ``DATABASE_URL``, else the embedded default server
that durable manages itself (data under ``DURABLE_HOME``). A URL's password never reaches a log
line or an error message: everything that prints a URL goes through `mask_password`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

if TYPE_CHECKING:
    from durable.store.embedded import ServerStatus

# scheme://user:password@host... The password runs to the last "@": an unescaped "@" inside a
# password is a common mistake, and masking too much is better than printing part of a secret.
_USERINFO_PASSWORD = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:@/?#]*:)(?P<password>.*)(?P<tail>@[^@]*)$",
    re.DOTALL,
)
# password=... as a URL query parameter (?password=x&...) or a libpq keyword (password=x host=y);
# sslpassword protects a client key and is just as secret.
_PASSWORD_PARAMETER = re.compile(r"(?i)((?:^|[?&;\s])(?:ssl)?password=)[^&;\s]*")

MASK = "***"


def mask_password(url: str) -> str:
    """Return ``url`` with every password replaced by ``***``.

    Handles ``scheme://user:password@host/db`` and ``password=`` query parameters or libpq
    keywords. Never raises: input that is not a URL comes back unchanged apart from masking.
    """
    if not isinstance(url, str):  # defensive: this runs inside error handlers
        return MASK
    masked = _USERINFO_PASSWORD.sub(
        lambda m: f"{m['head']}{MASK if m['password'] else ''}{m['tail']}", url
    )
    return _PASSWORD_PARAMETER.sub(rf"\g<1>{MASK}", masked)


def configured_database_url(explicit: str | None = None) -> str | None:
    """The URL configured by ``explicit`` or the environment, or None (the embedded default).

    In order: ``explicit`` (e.g. ``--database-url``), ``DURABLE_DATABASE_URL``, ``DATABASE_URL``.
    Empty values count as unset, as an empty variable in a compose file usually means "not
    configured".
    """
    for candidate in (
        explicit,
        os.environ.get("DURABLE_DATABASE_URL"),
        os.environ.get("DATABASE_URL"),
    ):
        if candidate:
            return candidate
    return None


def resolve_database_url(explicit: str | None = None) -> str:
    """Return the database URL to use.

    The configured one (`configured_database_url`), checked by `check_database_url`, else the
    embedded default server, which is started if it is not running (this blocks for a few
    seconds the first time).

    Raises:
        DatabaseUnavailable: the URL is malformed (password masked), or the embedded server is
            needed and cannot start.
    """
    configured = configured_database_url(explicit)
    if configured is not None:
        check_database_url(configured)
        return configured
    # Imported here: the embedded server is only needed when nothing else is configured.
    from durable.store.embedded import ensure_server

    return ensure_server()


# Characters that end the userinfo part of a URL early: in a password they must be
# percent-encoded, else the parser cuts the password there and reads the rest as host, port,
# path, query or fragment (and its errors quote that rest, i.e. part of the password).
_URL_DELIMITERS = "/?#[]@"


def check_database_url(url: str | None) -> None:
    """Refuse a ``postgresql://`` URL that the driver would misread, before it sees it.

    The driver's own errors for such a URL quote the piece it choked on, which may be part of
    the password ("invalid literal for int(): 'se'" for ``user:se/cret@host``). The error
    raised here names the problem and shows the URL with its password masked; it has no
    cause attached (``from None``), so no chained exception carries the password either.
    Other schemes and libpq keyword strings are left to the driver.

    Raises:
        DatabaseUnavailable: the URL cannot be used as written.
    """
    if not url or not re.match(r"(?i)^postgres(?:ql)?(?:\+[a-z0-9_]+)?://", url):
        return
    problem = _url_problem(url)
    if problem is not None:
        from durable.errors import DatabaseUnavailable

        raise DatabaseUnavailable(f"invalid database URL {mask_password(url)}: {problem}")


def _url_problem(url: str) -> str | None:
    """What makes ``url`` unusable, in words that quote nothing of its password."""
    rest = url.split("://", 1)[1]
    userinfo, at, _host_and_more = rest.rpartition("@")
    if at:
        _user, colon, password = userinfo.partition(":")
        bad = sorted({c for c in password if c in _URL_DELIMITERS}) if colon else []
        if bad:
            shown = " ".join(f"{c!r} (as {quote(c, safe='')})" for c in bad)
            return f"the password holds {shown}: percent-encode it"
        if "@" in userinfo.partition(":")[0]:
            return "the user name holds '@': percent-encode it (as %40)"
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        for host in filter(None, netloc.split(",")):
            _port_of(host)
        if parts.query:
            try:
                query = parse_qs(parts.query, strict_parsing=True)
            except ValueError:
                # Not parse_qs's message: it quotes the field, which may be a secret.
                return "the query does not parse (it is name=value pairs joined by '&')"
            for port in query.get("port", []):
                for value in port.split(","):
                    _check_port(value)
    except ValueError as error:
        return str(error)
    return None


def _port_of(host: str) -> None:
    if host.startswith("["):  # [ipv6] or [ipv6]:port
        closing = host.find("]")
        if closing < 0:
            raise ValueError("unbalanced '[' in the host")
        after = host[closing + 1 :]
        if after:
            if not after.startswith(":"):
                raise ValueError("unexpected text after ']' in the host")
            _check_port(after[1:])
        return
    _name, colon, port = host.rpartition(":")
    if colon:
        _check_port(port)


def _check_port(port: str) -> None:
    if port == "":
        return
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"the port must be a number from 1 to 65535, not {port!r}")


def uses_embedded_default(explicit: str | None = None) -> bool:
    """True when no URL is configured anywhere, so the embedded server will be used.

    durable owns that database, so it brings its schema up to date by itself (a configured
    database is only migrated when asked: `durable migrate` or `durable-worker --migrate`).
    """
    return not (
        explicit or os.environ.get("DURABLE_DATABASE_URL") or os.environ.get("DATABASE_URL")
    )


def durable_home() -> Path:
    """Return the directory for durable's own data: ``DURABLE_HOME``, else the user's data dir.

    The embedded server keeps its data in ``durable_home() / "pgdata"``. The directory is not
    created here.
    """
    configured = os.environ.get("DURABLE_HOME")
    if configured:
        return Path(configured).expanduser().absolute()
    import platformdirs

    return platformdirs.user_data_path("durable")


def embedded_server_status() -> ServerStatus:
    """Whether the embedded server of `durable_home` runs, its data dir, URL and pid; starts
    nothing. For ``durable server status``."""
    from durable.store.embedded import server_status

    return server_status()


def stop_embedded_server() -> bool:
    """Stop the embedded server of `durable_home`; False if it was not running."""
    from durable.store.embedded import stop_server

    return stop_server()


def start_embedded_server() -> str:
    """Start the embedded server of `durable_home` if needed; its URL (no password)."""
    from durable.store.embedded import ensure_server

    return ensure_server()
