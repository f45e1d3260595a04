"""SPEC 7.1, 7.3, 7.4 end to end: a worker killed with SIGKILL mid-workflow loses nothing."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import durable
from tests.helpers.processes import WorkerProcess


async def test_killed_worker_task_resumes_without_rerunning_recorded_steps(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    gate = tmp_path / "gate"
    first = await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            "tests.acceptance.workflows:crash_in_the_middle",
            name="crash",
            args=[str(ledger), str(gate)],
        )
        # Follow the log until the line after the recorded step: step one is durable now,
        # and the workflow is blocked in the gate step.
        async for line in client.tail(task.id):
            if line == "after step one":
                break
        first.signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
        assert (await client.get(task.id)).state == "running"  # held by a dead worker

        gate.touch()
        second = await workers().start()
        assert await client.result(task.id, timeout=60) == "done"

        assert ledger.read_text().splitlines() == ["one", "two"]  # step one ran once
        lines = [line async for line in client.tail(task.id)]
        assert lines == ["before step one", "after step one", "after the gate"]
        info = await client.get(task.id)
        assert info.state == "complete"
        assert info.attempts == 2
        assert second.has_log("took over the tasks of dead workers")
        events = await client.events(task.id)
        assert [(e.seq, e.label) for e in events] == [(0, "one"), (1, "gate"), (2, "two")]
