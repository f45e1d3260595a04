"""SPEC 5 under real signals: SIGTERM hand-over, a second signal, a frozen worker, poison tasks."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import asyncpg

import durable
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import follow_until

CRASH = "tests.acceptance.workflows:crash_in_the_middle"


async def test_sigterm_lets_the_running_step_finish_and_hands_the_task_over_at_once(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    # A long lease timeout: only the hand-over, not a takeover, can move the task in time.
    first = await workers("--lease-timeout", "60", "--shutdown-grace", "30").start()
    async with durable.Client(db_url) as client:
        task = await client.launch(CRASH, args=[str(ledger), str(gate)])
        await follow_until(client, task.id, "after step one")
        second = await workers("--lease-timeout", "60").start()
        first.signal(signal.SIGTERM)
        await first.wait_for_log("stopping; letting running effects finish")
        gate.touch()  # the step in flight finishes within the grace period and is recorded
        assert await first.wait(timeout=30) == 0
        assert first.has_log("released tasks to other workers", released=1)
        # Its step threads were idle by then: a normal exit, nothing abandoned.
        assert not first.has_log("exiting without waiting for steps still blocking their threads")
        assert await client.result(task.id, timeout=10) == "done"
        assert ledger.read_text().splitlines() == ["one", "two"]
        lines = [line async for line in client.tail(task.id)]
        assert lines == ["before step one", "after step one", "after the gate"]
        events = await client.events(task.id)
        assert [e.label for e in events] == ["one", "gate", "two"]
        assert second.has_log("task finished", task_id=task.id, state="complete")
        assert not second.has_log("took over the tasks of dead workers")


async def test_a_second_signal_exits_at_once(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    worker = await workers("--shutdown-grace", "60").start()
    async with durable.Client(db_url) as client:
        task = await client.launch(CRASH, args=[str(tmp_path / "l"), str(tmp_path / "gate")])
        await follow_until(client, task.id, "after step one")
        worker.signal(signal.SIGTERM)
        await worker.wait_for_log("stopping; letting running effects finish")
        worker.signal(signal.SIGTERM)
        assert await worker.wait(timeout=5) != 0


async def test_a_step_blocking_past_the_grace_does_not_keep_the_process_alive(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """After the grace the task is handed over; the process exits, not when the step ends.

    The step blocks in its thread (the gate never opens here); waiting for that thread at
    exit would keep a worker that already gave the task away alive for up to a minute.
    """
    worker = await workers("--shutdown-grace", "0.5").start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            "tests.acceptance.workflows:waits_for_gate", args=[str(tmp_path / "never")]
        )
        await follow_until(client, task.id, "waiting")
        worker.signal(signal.SIGTERM)
        assert await worker.wait(timeout=10) == 0
        assert worker.has_log("released tasks to other workers", released=1)
        assert worker.has_log("exiting without waiting for steps still blocking their threads")
        assert (await client.get(task.id)).state == "pending"


async def test_a_frozen_worker_that_wakes_up_cannot_write_for_its_lost_task(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    frozen = await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(CRASH, args=[str(ledger), str(gate)])
        await follow_until(client, task.id, "after step one")
        frozen.signal(signal.SIGSTOP)  # a long GC pause, a frozen VM
        other = await workers().start()
        await other.wait_for_log("took over the tasks of dead workers")
        await other.wait_for_log("task started", task_id=task.id)
        frozen.signal(signal.SIGCONT)
        await frozen.wait_for_log("this worker was declared dead; dropping its tasks")
        gate.touch()  # both gate steps complete now; only the new holder may record
        assert await client.result(task.id, timeout=30) == "done"
        assert ledger.read_text().splitlines() == ["one", "two"]
        events = await client.events(task.id)
        assert [e.label for e in events] == ["one", "gate", "two"]
        lines = [line async for line in client.tail(task.id)]
        assert lines == ["before step one", "after step one", "after the gate"]


async def test_a_poison_task_is_abandoned_and_the_fleet_survives(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    async with durable.Client(db_url) as client:
        poison = await client.launch("tests.acceptance.workflows:kills_its_worker")
        kills = 0
        ended = asyncio.ensure_future(client.wait(poison.id, timeout=60))
        while not ended.done():
            assert kills < 5, "the poison task was never abandoned"
            worker = await workers("--max-attempts", "2").start()
            died = asyncio.ensure_future(worker.wait(timeout=60))
            # Each worker dies running the poison task, until one's takeover abandons it.
            await asyncio.wait([died, ended], return_when=asyncio.FIRST_COMPLETED)
            if died.done():
                assert died.result() == -signal.SIGKILL
                kills += 1
            else:
                died.cancel()
        info = ended.result()
        assert info.state == "failed"
        assert info.error is not None
        assert info.error["message"] == "abandoned after 2 attempts"
        assert kills == 2
        task = await client.launch("examples.hello_world:main", name="after the storm")
        assert await client.result(task.id, timeout=10) is None  # the fleet still works


async def test_a_worker_whose_claim_loop_fails_stops_instead_of_running_blind(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    worker = await workers().start()
    conn = await asyncpg.connect(db_url)
    try:
        # A schema that no longer fits the code: the claim statement now fails.
        await conn.execute("ALTER TABLE durable.tasks RENAME COLUMN log_base TO renamed")
        async with durable.Client(db_url, check_schema=False) as client:
            await client.launch("examples.hello_world:main")  # wakes the claim loop
        assert await worker.wait(timeout=30) == 1
        assert worker.has_log("worker loop failed; stopping", loop="durable-claim")
    finally:
        await conn.close()
