"""SPEC 3 and 7.8 end to end: fan-out with asyncio replays in the order it first ran.

Real worker processes, a real database: the task is suspended (and so replayed from the
top) or its worker is killed with SIGKILL mid-way, and the replay must take the same path,
with no NonDeterminismError and no recorded step run again.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import durable
from tests.helpers.processes import WorkerProcess, run_cli
from tests.helpers.waiting import poll_until, wait_for_state

WORKFLOWS = "tests.acceptance.workflows_concurrency"


async def test_gather_of_helpers_survives_suspension(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            f"{WORKFLOWS}:fan_out_helpers", name="fan", args=[str(ledger), 4, 2.5]
        )
        await wait_for_state(client, task.id, "suspended", timeout=30)
        assert await client.result(task.id, timeout=30) == [1, 11, 21, 31]
        info = await client.get(task.id)
        assert info.attempts == 2  # it was replayed from the top after the sleep
        runs = ledger.read_text().splitlines()
        assert sorted(runs) == sorted(
            [f"first {i}" for i in range(4)] + [f"second {10 * i}" for i in range(4)]
        )
        # The second steps were issued in the order the first ones finished (3, 2, 1, 0).
        events = await client.events(task.id)
        seconds = [e.payload["value"] for e in events if e.label == "second"]
        assert seconds == [31, 21, 11, 1]
        lines = [line async for line in client.tail(task.id)]
        assert lines == ["gathered [1, 11, 21, 31]", "woke up"]


async def test_gather_of_helpers_survives_kill_9(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    gate = tmp_path / "gate"
    first = await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            f"{WORKFLOWS}:fan_out_helpers",
            name="fan",
            args=[str(ledger), 4, 0.0, str(gate)],
        )
        # Helpers 3, 2 and 1 finish both steps; helper 0 blocks in its second step. Their
        # outcomes are recorded when the background flush writes them (no notification).

        async def three_seconds_recorded() -> bool:
            events = await client.events(task.id)
            return len([e for e in events if e.label == "second"]) == 3

        await poll_until(three_seconds_recorded, "three second steps recorded", timeout=30)
        first.signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
        gate.touch()
        await workers().start()
        assert await client.result(task.id, timeout=60) == [1, 11, 21, 31]
        runs = ledger.read_text().splitlines()
        # Only the step in flight at the kill ran again (at-least-once); no recorded one did.
        assert sorted(runs) == sorted(
            [f"first {i}" for i in range(4)] + [f"second {10 * i}" for i in range(4)]
        )


async def test_gather_of_calls_survives_the_parent_suspending(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(f"{WORKFLOWS}:fan_out_calls", name="calls", args=[3])
        assert await client.result(task.id, timeout=60) == [0, 1, 4]
        info = await client.get(task.id)
        assert info.attempts >= 2  # suspended on its children, woken, replayed


async def test_a_recorded_dict_keeps_its_key_order_across_a_replay(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            f"{WORKFLOWS}:iterate_mapping", name="dict", args=[str(ledger), 2.5]
        )
        result = await client.result(task.id, timeout=30)
        assert result == ["zebra-long-key=1", "apple=2", "mango-mid=3"]
        assert (await client.get(task.id)).attempts == 2
        assert ledger.read_text().splitlines() == result  # each key processed once


async def test_retry_runs_the_failed_step_again_under_the_fixed_code(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    fixed = tmp_path / "fixed"
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            f"{WORKFLOWS}:checkout", name="checkout", args=[str(ledger), str(fixed)]
        )
        info = await client.wait(task.id, timeout=30)
        assert info.state == "failed"
        assert info.error is not None and info.error["type"] == "StepFailed"
        fixed.touch()  # the fix is deployed
        retried = await run_cli(db_url, "retry", str(task.id))
        assert retried.code == 0, retried.stderr
        assert await client.result(task.id, timeout=30) == ["reserve", "charged"]
        # The step before it did not run again; the failed one ran again, once.
        assert ledger.read_text().splitlines() == [
            "reserve",
            "charge attempted",
            "charge attempted",
        ]
        charge = [e for e in await client.events(task.id) if e.label == "charge"]
        assert len(charge) == 1
        assert charge[0].payload["status"] == "ok"
        previous = charge[0].payload["previous"]
        assert previous["status"] == "error" and previous["retried"] is True
        assert previous["error_type"] == "NotFixedYet"
