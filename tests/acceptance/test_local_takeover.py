"""A worker killed on this machine is taken over at once, not when its lease runs out.

Both workers run with a 60 s lease: only the local liveness check (durable/worker/liveness.py:
the dead worker's pid no longer exists in our boot and pid namespace) can explain a takeover
within seconds. A frozen worker (SIGSTOP) keeps its pid, so it keeps its tasks until its lease.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import durable
from tests.helpers.processes import WorkerProcess

LONG_LEASE = ("--lease-timeout", "60")


async def test_a_killed_local_worker_is_taken_over_long_before_its_lease_runs_out(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    gate = tmp_path / "gate"
    first = await workers(*LONG_LEASE).start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            "tests.acceptance.workflows:crash_in_the_middle", args=[str(ledger), str(gate)]
        )
        async for line in client.tail(task.id):
            if line == "after step one":
                break
        first.signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
        gate.touch()
        second = await workers(*LONG_LEASE).start()
        # Within seconds, with a 60 s lease: the takeover did not wait for it.
        assert await client.result(task.id, timeout=20) == "done"
        assert second.has_log("took over the tasks of dead workers")
        assert ledger.read_text().splitlines() == ["one", "two"]
        assert (await client.get(task.id)).attempts == 2


async def test_a_frozen_local_worker_keeps_its_tasks(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    first = await workers(*LONG_LEASE).start()
    async with durable.Client(db_url) as client:
        task = await client.launch("tests.acceptance.workflows:waits_for_gate", args=[str(gate)])
        async for line in client.tail(task.id):
            if line == "waiting":
                break
        first.signal(signal.SIGSTOP)
        try:
            second = await workers(*LONG_LEASE).start()
            # Three of its heartbeat rounds, each with its takeover check, have run.
            await second.wait_for_log("heartbeat round", round=3, timeout=10)
            info = await client.get(task.id)
            assert info.state == "running" and info.attempts == 1
            assert not second.has_log("took over the tasks of dead workers")
        finally:
            first.signal(signal.SIGCONT)
        gate.touch()
        assert await client.result(task.id, timeout=20) == "opened"
        assert (await client.get(task.id)).attempts == 1
