"""Await task states through the client's notifications; poll only what announces nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import durable


async def wait_for_state(
    client: durable.Client, task_id: int, state: str, timeout: float = 10
) -> durable.TaskInfo:
    """Until the task is in ``state``; every state change of interest is notified."""
    async with asyncio.timeout(timeout), client._watch(task_id) as changed:
        while True:
            changed.clear()
            info = await client.get(task_id)
            if info.state == state:
                return info
            await changed.wait()


async def follow_until(client: durable.Client, task_id: int, wanted: str) -> None:
    """Until the task's log has the line ``wanted`` (AssertionError if it ends without)."""
    async for line in client.tail(task_id):
        if line == wanted:
            return
    raise AssertionError(f"the task ended before printing {wanted!r}")


async def poll_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    """Until ``check()`` is true, failing after ``timeout`` s with ``what`` it waited for.

    Only for what announces nothing: rows another process writes without a NOTIFY, a lock
    queue in pg_locks, a backend's state in pg_stat_activity. A bounded poll is the wait there.
    """
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
