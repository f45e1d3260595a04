"""Long timers suspend the task (no worker holds it) and fire on time, by replay."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest

import durable
from tests.helpers.waiting import wait_for_state


async def test_a_long_timer_suspends_the_task_and_fires_within_a_second(db_url: str) -> None:
    async with (
        durable.Worker(db_url, concurrency=4, suspend_after=0.3, heartbeat_interval=0.5) as worker,
        durable.Client(db_url) as client,
    ):
        task = await client.launch("tests.acceptance.workflows:sleeper", name="nap", args=[1.5])
        await wait_for_state(client, task.id, "suspended", timeout=10)
        info = await client.get(task.id)
        assert info.worker_id is None
        assert worker._running == {}  # nothing held in memory for it
        assert await client.result(task.id, timeout=10) == "rested"
        info = await client.get(task.id)
        (sleep,) = [e for e in await client.events(task.id) if e.kind == "sleep"]
        deadline = datetime.fromisoformat(sleep.payload["until"])
        assert info.finished_at is not None
        lateness = (info.finished_at - deadline).total_seconds()
        assert -0.2 < lateness < 1.0
        assert info.attempts == 2  # claimed, suspended, claimed again when due
        assert [line async for line in client.tail(task.id)] == ["going to sleep", "woke up"]


async def test_short_timers_wait_in_memory(db_url: str) -> None:
    async with (
        durable.Worker(db_url, concurrency=4, suspend_after=5) as _worker,
        durable.Client(db_url) as client,
    ):
        task = await client.launch("tests.acceptance.workflows:sleeper", args=[0.2])
        assert await client.result(task.id, timeout=10) == "rested"
        assert (await client.get(task.id)).attempts == 1


async def test_many_suspended_tasks_wake_in_order(db_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    async with (
        durable.Worker(db_url, concurrency=50, suspend_after=0.3) as _worker,
        durable.Client(db_url) as client,
    ):
        tasks = [
            await client.launch(
                "tests.acceptance.workflows:step_then_sleep", args=[str(ledger), 1.0 + i / 20]
            )
            for i in range(20)
        ]
        results = await asyncio.gather(*(client.result(t.id, timeout=20) for t in tasks))
        assert results == ["done"] * 20
        assert ledger.read_text().splitlines() == ["step"] * 20  # no step ran twice


async def test_a_workflow_timeout_cancels_a_suspended_task_at_its_deadline(db_url: str) -> None:
    async with (
        durable.Worker(db_url, concurrency=4, suspend_after=0.2) as _worker,
        durable.Client(db_url) as client,
    ):
        task = await client.launch("tests.acceptance.workflows:too_slow")
        with pytest.raises(durable.TaskCancelled):
            await client.result(task.id, timeout=10)
        info = await client.get(task.id)
        assert info.finished_at is not None
        assert (info.finished_at - info.created_at).total_seconds() < 2.0


async def test_a_wait_whose_timeout_is_near_is_not_claimed_over_and_over(db_url: str) -> None:
    """A notification wait suspends, is claimed just before its timeout, and then stays.

    Suspending again once the timeout is closer than the claim lead would make the task
    claimable at once: a claim-replay-suspend loop until the deadline (seen as 16 claims for
    one 1.5 s wait).
    """
    async with (
        durable.Worker(db_url, concurrency=4, heartbeat_interval=0.5) as _worker,
        durable.Client(db_url) as client,
    ):
        task = await client.launch("tests.acceptance.workflows:mailbox_timeout", args=[1.0])
        assert await client.result(task.id, timeout=10) is None
        # Claimed to run, suspended on the mailbox, claimed again for the timeout: twice.
        assert (await client.get(task.id)).attempts <= 2
