"""A cancellation whose NOTIFY the worker missed still reaches the running task (SPEC 3, 5).

The worker runs `undoes_its_first_step`, blocked inside its first step (held, ``running``).
Its LISTEN connection is terminated (``pg_terminate_backend``) while a TCP proxy in front of
the database refuses new connections, so it cannot LISTEN again; the cancellation is requested
in that window, and its NOTIFY reaches nobody. Only the flag in the task's row is left:

- with a short heartbeat, the next heartbeat round finds it while the listener is still down;
- with a long heartbeat, the listener's reconnect finds it as soon as the proxy lets it back.

Either way the task runs its cleanup step and ends ``cancelled``. Without the re-checks it
stays blocked in its step (the gate is never opened) and the waits below time out.
"""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest

import durable
from tests.helpers.processes import WorkerProcess
from tests.helpers.proxy import Proxy
from tests.helpers.waiting import follow_until

WORKFLOW = "tests.acceptance.workflows:undoes_its_first_step"

TERMINATE_LISTENER = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'durable-listen'
"""


async def cancel_while_not_listening(
    db_url: str, proxy: Proxy, worker: WorkerProcess, task_id: int
) -> None:
    """Cut the worker's LISTEN connection, keep it from coming back, and cancel meanwhile.

    No client is open here, so the only LISTEN connection is the worker's.
    """
    observer = await asyncpg.connect(db_url)  # direct: not through the proxy
    try:
        proxy.pause()
        assert [row[0] for row in await observer.fetch(TERMINATE_LISTENER)] == [True]
    finally:
        await observer.close()
    await worker.wait_for_log("listen connection lost; reconnecting", timeout=10)
    async with durable.Client(db_url) as client:
        assert await client.cancel(task_id) == "running"  # flagged; the NOTIFY reaches nobody


async def start_blocked_task(db_url: str, worker: WorkerProcess, ledger: Path, gate: Path) -> int:
    """Start the worker and a task that blocks in its first step; the task's id."""
    await worker.start()
    async with durable.Client(db_url) as client:
        task = await client.launch(WORKFLOW, args=[str(ledger), str(gate)])
        await follow_until(client, task.id, "start")
    return task.id


async def test_a_heartbeat_round_delivers_a_cancellation_whose_notify_was_missed(
    db_url: str, tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    heartbeat = 0.2
    async with Proxy(db_url) as proxy:
        worker = WorkerProcess(
            proxy.url(db_url), "--heartbeat-interval", str(heartbeat), "--lease-timeout", "5"
        )
        try:
            task_id = await start_blocked_task(db_url, worker, ledger, gate)
            await cancel_while_not_listening(db_url, proxy, worker, task_id)
            asked = time.monotonic()

            async with durable.Client(db_url) as client:
                with pytest.raises(durable.TaskCancelled):
                    await client.result(task_id, timeout=10)
            took = time.monotonic() - asked
            # The listener is still shut out: the heartbeat round found the request.
            assert not worker.has_log("listen connection re-established")
            assert worker.has_log("cancellation requested", task_id=task_id, missed_notify=True)
            assert ledger.read_text().splitlines() == ["undo"]
            # A heartbeat interval, plus the cleanup step and the final write.
            assert took < heartbeat + 1.5, f"cancelled {took:.2f} s after the request"
        finally:
            await worker.stop()


async def test_a_listen_reconnect_delivers_a_cancellation_whose_notify_was_missed(
    db_url: str, tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    heartbeat = 30.0  # no heartbeat round comes to the rescue within the test
    async with Proxy(db_url) as proxy:
        worker = WorkerProcess(
            proxy.url(db_url), "--heartbeat-interval", str(heartbeat), "--lease-timeout", "90"
        )
        try:
            task_id = await start_blocked_task(db_url, worker, ledger, gate)
            await cancel_while_not_listening(db_url, proxy, worker, task_id)

            proxy.resume()
            async with durable.Client(db_url) as client:
                with pytest.raises(durable.TaskCancelled):
                    await client.result(task_id, timeout=10)
            assert worker.has_log("listen connection re-established")
            assert worker.has_log("cancellation requested", task_id=task_id, missed_notify=True)
            assert ledger.read_text().splitlines() == ["undo"]
        finally:
            await worker.stop()
