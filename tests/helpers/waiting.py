"""Await task states through the client's notifications (no sleeps)."""

from __future__ import annotations

import asyncio

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
