"""A dedicated LISTEN connection that reconnects on failure and calls back on NOTIFY.

Pooled connections cannot hold LISTEN (they are shared and reset), so the listener owns one
connection for its whole life. When the connection drops, it reconnects with capped backoff and
LISTENs again; ``on_reconnect`` tells the owner, which must assume it missed notifications and
re-check what it waits for (claim once, re-read a log).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg
import structlog

from durable.store import queries
from durable.store.pool import CONNECTION_ERRORS, connect

Callback = Callable[[str, str], None]

log = structlog.get_logger("durable.listen")


class Listener:
    """LISTEN on some channels; ``callback(channel, payload)`` runs on the event loop."""

    def __init__(
        self,
        url: str,
        channels: Iterable[str],
        callback: Callback,
        *,
        on_reconnect: Callable[[], Awaitable[None] | None] | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self.channels = list(channels)
        self.callback = callback
        self.on_reconnect = on_reconnect
        self.max_backoff = max_backoff
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and LISTEN; raises DatabaseUnavailable if the first attempt fails."""
        await self._open()
        self._task = asyncio.create_task(self._supervise(), name="durable-listener")

    async def close(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None and not self._conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), timeout=2)
        self._conn = None

    async def _open(self) -> None:
        conn = await connect(self.url)
        self._lost.clear()
        conn.add_termination_listener(self._on_termination)
        for channel in self.channels:
            await conn.add_listener(channel, self._dispatch)
        self._conn = conn

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self.callback(channel, payload)

    def _on_termination(self, _conn: Any) -> None:
        self._lost.set()

    async def _supervise(self) -> None:
        backoff = 0.1
        while True:
            await self._wait_lost()
            log.warning("listen connection lost; reconnecting")
            while True:
                try:
                    await self._open()
                    break
                except Exception as error:  # DatabaseUnavailable and anything odd
                    log.debug("listen reconnect failed", error=str(error), retry_in=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
            backoff = 0.1
            log.info("listen connection re-established")
            if self.on_reconnect is not None:
                result = self.on_reconnect()
                if result is not None:
                    await result

    async def _wait_lost(self) -> None:
        # Termination listeners fire when asyncpg notices; a silent half-open TCP connection
        # is caught by a cheap periodic round trip.
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=5.0)
                return
            conn = self._conn
            if conn is None or conn.is_closed():
                return
            try:
                await asyncio.wait_for(conn.execute(queries.PING), timeout=5.0)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                with contextlib.suppress(Exception):
                    conn.terminate()
                return
