"""One LISTEN connection for the whole server, fanned out to the browsers that follow it.

Every open dashboard page and ``GET /api/v1/changes`` stream subscribes here; none of them
opens a connection or polls the database on its own. A notification (a launch, a log line, a
suspension, a task's end, a promise completed) is put in each subscriber's queue; a subscriber
too slow to keep up loses the oldest hints, which is harmless: each hint only says "look again".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from durable.store.listen import Listener
from durable.store.wakeups import PROMISES_CHANNEL, TASK_EVENTS_CHANNEL, TASKS_CHANNEL

# Hints a subscriber may have waiting before the oldest are dropped.
BACKLOG = 256

# What a reconnected listener tells everyone: notifications may have been missed.
RECONNECTED = "reconnected"


class Feed:
    """Changes announced by NOTIFY, for any number of subscribers."""

    def __init__(self, url: str) -> None:
        self._listener = Listener(
            url,
            [TASKS_CHANNEL, TASK_EVENTS_CHANNEL, PROMISES_CHANNEL],
            self._on_notify,
            on_reconnect=self._on_reconnect,
        )
        self._subscribers: set[asyncio.Queue[str]] = set()

    async def start(self) -> None:
        """Open the LISTEN connection."""
        await self._listener.start()

    async def close(self) -> None:
        """Close it."""
        await self._listener.close()

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue of hints (``"task:<id>:<what>"``, ``"queue:<name>"``, ``"promise:<id>"``)."""
        queue: asyncio.Queue[str] = asyncio.Queue(BACKLOG)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def _on_notify(self, channel: str, payload: str) -> None:
        prefix = {TASKS_CHANNEL: "queue", TASK_EVENTS_CHANNEL: "task"}.get(channel, "promise")
        self._publish(f"{prefix}:{payload}")

    def _on_reconnect(self) -> None:
        self._publish(RECONNECTED)

    def _publish(self, hint: str) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(hint)
