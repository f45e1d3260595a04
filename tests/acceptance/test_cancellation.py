"""Cancellation: delivered where the workflow waits, cleanup runs, children follow the parent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import durable
from tests.helpers.processes import WorkerProcess, run_cli
from tests.helpers.waiting import wait_for_state


async def test_cancelling_a_suspended_parent_runs_its_cleanup_and_cancels_its_children(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    await workers().start()
    async with durable.Client(db_url) as client:
        parent = await client.launch(
            "tests.acceptance.workflows:parent_of_waiters", args=[str(ledger)]
        )
        await wait_for_state(client, parent.id, "suspended", timeout=30)
        cancelled = await run_cli(db_url, "cancel", str(parent.id))
        assert cancelled.code == 0, cancelled.stderr
        tailed = await run_cli(db_url, "tail", str(parent.id))
        assert tailed.code == 3
        assert tailed.stdout == "children started\n"
        assert ledger.read_text().splitlines() == ["cleanup"]
        children = sorted(
            (t for t in await client.list_tasks() if t.parent_id == parent.id), key=lambda t: t.id
        )
        assert len(children) == 3
        assert [child.detached for child in children] == [False, False, True]
        for child in children[:2]:  # cancelled with their parent
            await wait_for_state(client, child.id, "cancelled", timeout=30)
        # The detached child outlives its parent.
        detached = await client.get(children[2].id)
        assert detached.state in ("suspended", "pending", "running")
        assert detached.detached and detached.to_json()["detached"] is True
        again = await run_cli(db_url, "cancel", str(parent.id))
        assert again.code == 0 and again.stdout.strip() == "cancelled"
        assert "already" in again.stderr


async def test_trip_example_releases_reservations_on_cancel(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    async with durable.Client(db_url) as client:
        trip = await client.launch(
            "examples.children_and_cancel:book_trip", name="trip", args=["t1"]
        )
        async for line in client.tail(trip.id):
            if line.endswith("waiting for confirmation"):
                break
        await wait_for_state(client, trip.id, "suspended", timeout=30)  # on the promise
        assert await client.cancel(trip.id) == "pending"  # woken to run its cleanup
        info = await client.wait(trip.id, timeout=30)
        assert info.state == "cancelled"
        lines = [line async for line in client.tail(trip.id)]
        assert lines == [
            "booked t1/flight, t1/hotel, t1/car; waiting for confirmation",
            "released t1/flight",
            "released t1/hotel",
            "released t1/car",
        ]


async def test_a_confirmed_trip_completes(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    async with durable.Client(db_url) as client:
        trip = await client.launch("examples.children_and_cancel:book_trip", args=["t2"])
        await wait_for_state(client, trip.id, "suspended", timeout=30)
        await client.resolve("confirm-t2", True)
        assert await client.result(trip.id, timeout=30) == ["t2/flight", "t2/hotel", "t2/car"]


async def test_cancelling_a_running_step_delivers_cancelled_at_its_await(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            "tests.acceptance.workflows:waits_for_gate", args=[str(tmp_path / "gate")]
        )
        async for line in client.tail(task.id):
            if line == "waiting":
                break
        assert await client.cancel(task.id) == "running"
        info = await client.wait(task.id, timeout=30)
        assert info.state == "cancelled"
        (tmp_path / "gate").touch()  # let the abandoned step's thread finish
