"""Child tasks: fan-out, suspension of the parent, failures surfacing in the parent."""

from __future__ import annotations

from collections.abc import Callable

import durable
from tests.helpers.processes import WorkerProcess

WORKFLOWS = "tests.acceptance.workflows"


async def test_a_parent_fans_out_to_hundreds_of_children(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers("--concurrency", "50").start()
    await workers("--concurrency", "50").start()
    async with durable.Client(db_url) as client:
        parent = await client.launch(f"{WORKFLOWS}:fan_out", args=[300])
        assert await client.result(parent.id, timeout=120) == sum(i * i for i in range(300))
        children = [t for t in await client.list_tasks(limit=1000) if t.parent_id == parent.id]
        assert len(children) == 300
        assert {t.state for t in children} == {"complete"}
        info = await client.get(parent.id)
        # Suspended while its children ran, and woken once (not once per child).
        assert info.attempts <= 3, info.attempts
        lines = [line async for line in client.tail(parent.id)]
        assert lines == ["300 children done"]


async def test_a_child_failure_surfaces_as_task_failed(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    async with durable.Client(db_url) as client:
        parent = await client.launch(f"{WORKFLOWS}:child_fails")
        result = await client.result(parent.id, timeout=30)
        assert result == "ValueError: this workflow always fails"


async def test_continue_as_new_restarts_under_the_same_id_with_a_fresh_log(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(f"{WORKFLOWS}:countdown", args=[3])
        assert await client.result(task.id, timeout=30) == 3 + 2 + 1
        events = await client.events(task.id)
        assert [(e.seq, e.label, e.payload["value"]) for e in events] == [(0, "value", 0)]
        lines = [line async for line in client.tail(task.id)]
        assert lines == [f"generation n={n}" for n in (3, 2, 1, 0)]
        info = await client.get(task.id)
        assert info.args == [0] and info.kwargs == {"total": 6}
