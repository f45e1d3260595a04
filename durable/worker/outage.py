"""Losing the database is logged once per outage, not once per failed round trip."""

from __future__ import annotations

import time

import structlog

log = structlog.get_logger("durable.worker")


class Outage:
    """Tracks whether the database is currently unreachable for this process."""

    def __init__(self) -> None:
        self.down_since: float | None = None

    def failed(self, during: str, error: BaseException) -> None:
        """A round trip failed on a connection error (logged the first time only)."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning(
                "database unavailable; reconnecting with backoff", during=during, error=str(error)
            )

    def recovered(self) -> None:
        """A round trip succeeded (logs the end of an outage)."""
        if self.down_since is not None:
            down_for = round(time.monotonic() - self.down_since, 3)
            self.down_since = None
            log.info("database reachable again", down_for=down_for)


# One per process: the worker's loops and its task runners share the database.
OUTAGE = Outage()
