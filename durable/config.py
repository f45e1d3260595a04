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


def resolve_database_url(explicit: str | None = None) -> str:
    """Return the database URL to use.

    In order: ``explicit`` (e.g. ``--database-url``), the environment variables
    ``DURABLE_DATABASE_URL`` then ``DATABASE_URL``, else the embedded default server, which is
    started if it is not running (this blocks for a few seconds the first time). Empty values
    count as unset, as an empty variable in a compose file usually means "not configured".

    Raises:
        DatabaseUnavailable: the embedded server is needed and cannot start.
    """
    for candidate in (
        explicit,
        os.environ.get("DURABLE_DATABASE_URL"),
        os.environ.get("DATABASE_URL"),
    ):
        if candidate:
            return candidate
    # Imported here: the embedded server is only needed when nothing else is configured.
    from durable.store.embedded import ensure_server

    return ensure_server()


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
