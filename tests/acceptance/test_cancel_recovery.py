"""Cancellation survives crashes and retries (SPEC 3 cancellation, 7.4).

- A worker killed with SIGKILL in the middle of a task's cleanup: the next worker replays the
  task up to where the cancellation landed, delivers it there again (not when the awaited
  timer would have fired, an hour later), replays the cleanup done so far, and finishes it.
- A cancelled task that is retried resumes where it was cancelled, as if it had not been; a
  second cancellation lands at once and runs the cleanup again.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

import durable
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import follow_until, wait_for_state

SLOW_CLEANUP = "tests.acceptance.workflows:cleans_up_slowly"


async def test_a_worker_killed_during_cleanup_leaves_the_next_one_to_finish_it(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    first = await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(SLOW_CLEANUP, args=[str(ledger), str(gate)])
        await wait_for_state(client, task.id, "suspended", timeout=30)
        await client.cancel(task.id)
        await follow_until(client, task.id, "released one")  # blocked on the gate now
        first.signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL

        gate.touch()
        await workers().start()
        with pytest.raises(durable.TaskCancelled):
            await client.result(task.id, timeout=30)
        assert ledger.read_text().splitlines() == ["release one", "release two"]
        lines = [line async for line in client.tail(task.id)]
        assert lines == ["waiting", "released one", "released two"]


async def test_a_retried_cancelled_task_resumes_where_it_was_cancelled(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    gate.touch()
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(SLOW_CLEANUP, args=[str(ledger), str(gate), 3])
        await wait_for_state(client, task.id, "suspended", timeout=30)
        await client.cancel(task.id)
        with pytest.raises(durable.TaskCancelled):
            await client.result(task.id, timeout=30)

        await client.retry(task.id)
        # Back at its sleep, as if never cancelled: the timer fires, the workflow returns.
        assert await client.result(task.id, timeout=30) == "slept"
        assert ledger.read_text().splitlines() == ["release one", "release two"]
        lines = [line async for line in client.tail(task.id)]
        assert lines == ["waiting", "released one", "released two", "woke up"]
        kinds = [e.kind for e in await client.events(task.id)]
        assert kinds.count("cancel") == 1  # kept, marked as undone by the retry


async def test_a_retried_task_can_be_cancelled_again_at_once(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    gate.touch()
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(SLOW_CLEANUP, args=[str(ledger), str(gate)])
        for attempt in range(2):
            if attempt:
                await client.retry(task.id)
            await wait_for_state(client, task.id, "suspended", timeout=30)
            await client.cancel(task.id)
            # Lands where the task waits (an hour-long sleep), not when the sleep ends.
            with pytest.raises(durable.TaskCancelled):
                await client.result(task.id, timeout=30)
        assert ledger.read_text().splitlines() == ["release one", "release two"] * 2
        lines = [line async for line in client.tail(task.id)]
        assert lines == ["waiting"] + ["released one", "released two"] * 2
