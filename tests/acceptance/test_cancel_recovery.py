"""Cancellation survives crashes and retries (SPEC 3 cancellation, 7.4).

- A worker killed with SIGKILL in the middle of a task's cleanup: the next worker replays the
  task up to where the cancellation landed, delivers it there again (not when the awaited
  timer would have fired, an hour later), replays the cleanup done so far, and finishes it.
- A cancelled task that is retried resumes where it was cancelled, as if it had not been; a
  second cancellation lands at once and runs the cleanup again.
- A workflow timeout that had landed lands again after a crash in its cleanup; a task whose
  worker died before anything was recorded still gets the cancellation inside its try; a
  parent's children are cancelled even if its worker dies while cancelling them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

import durable
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import follow_until, poll_until, wait_for_state

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


async def test_a_timed_out_task_whose_worker_died_in_cleanup_finishes_it(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """The timeout lands again where it had (not when the hour-long sleep ends)."""
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    first = await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            "tests.acceptance.workflows:times_out_then_cleans_up", args=[str(ledger), str(gate)]
        )
        await follow_until(client, task.id, "cleaning")  # timed out, blocked on the gate now
        first.signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL

        gate.touch()
        await workers().start()
        with pytest.raises(durable.TaskCancelled):
            await client.result(task.id, timeout=30)
        assert ledger.read_text().splitlines() == ["cleanup"]  # recorded: not run again
        lines = [line async for line in client.tail(task.id)]
        assert lines == ["waiting", "cleaning", "cleaned"]


async def test_a_task_cancelled_before_its_first_record_still_runs_its_cleanup(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Its worker died in the first step (nothing recorded); the cancellation lands in the try."""
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    first = await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            "tests.acceptance.workflows:undoes_its_first_step", args=[str(ledger), str(gate)]
        )
        await follow_until(client, task.id, "start")  # flushed before the step's code runs
        first.signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
        assert await client.cancel(task.id) == "running"  # held by the dead worker

        await workers().start()
        with pytest.raises(durable.TaskCancelled):
            await client.result(task.id, timeout=30)
        assert ledger.read_text().splitlines() == ["undo"]
        lines = [line async for line in client.tail(task.id)]
        assert lines == ["start", "undone"]


async def test_children_are_cancelled_even_if_the_parents_worker_dies_on_the_way(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    """The worker dies while cancelling a cancelled parent's children: the next one does it.

    A lock held by the test on one child stops the worker's statement that cancels the
    children; the worker is then killed and that statement's backend terminated, as if the
    worker had died just before sending it. The parent must not be final yet (else nothing
    would ever run it, or its children's cancellation, again).
    """
    first = await workers().start()
    observer = await asyncpg.connect(db_url)
    try:
        async with durable.Client(db_url) as client:
            parent = await client.launch("tests.acceptance.workflows:parent_of_sleepers")
            await follow_until(client, parent.id, "children started")
            await wait_for_state(client, parent.id, "suspended", timeout=30)
            children = sorted(t.id for t in await client.list_tasks() if t.parent_id == parent.id)
            for child in children:
                await wait_for_state(client, child, "suspended", timeout=30)

            async with observer.transaction():
                await observer.execute(
                    "SELECT 1 FROM durable.tasks WHERE id = $1 FOR UPDATE", children[0]
                )
                await client.cancel(parent.id)
                blocked: list[int] = []

                async def worker_blocked() -> bool:
                    blocked[:] = (
                        await observer.fetchval(
                            "SELECT array_agg(pid) FROM pg_stat_activity"
                            " WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                        )
                        or []
                    )
                    return bool(blocked)

                await poll_until(worker_blocked, "the worker to block on the locked child")
                first.signal(signal.SIGKILL)
                assert await first.wait() == -signal.SIGKILL
                await observer.execute("SELECT pg_terminate_backend($1)", blocked[0])
            assert (await client.get(parent.id)).state == "running"  # not final yet

            await workers().start()
            for child in children:
                await wait_for_state(client, child, "cancelled", timeout=30)
            with pytest.raises(durable.TaskCancelled):
                await client.result(parent.id, timeout=30)
    finally:
        await observer.close()
