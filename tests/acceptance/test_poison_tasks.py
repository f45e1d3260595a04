"""SPEC 5 and 7.9: nothing a task does stops a worker or leaves the task running.

One real worker runs every poison workflow in turn; each ends with a clear state, and the
same worker then still runs an ordinary task.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import durable
from tests.acceptance.workflows_poison import FAILS, POISON
from tests.helpers.processes import WorkerProcess


@pytest.fixture
async def worker(db_url: str, workers: Callable[..., WorkerProcess]) -> WorkerProcess:
    return await workers().start()


async def test_poison_tasks_fail_and_the_worker_goes_on(db_url: str, worker: WorkerProcess) -> None:
    async with durable.Client(db_url) as client:
        for name, error_type in FAILS:
            task = await client.launch(f"{POISON}:{name}", name=name)
            info = await client.wait(task.id, timeout=30)
            assert info.state == "failed", (name, info)
            assert info.error is not None
            assert info.error["type"] == error_type, (name, info.error)
            assert info.error["message"] is not None
        printed = await client.launch(f"{POISON}:nul_line", name="nul line")
        assert await client.result(printed.id, timeout=30) == "printed"
        lines = [line async for line in client.tail(printed.id)]
        assert lines == ["before\\x00after", "lone \\ud800 surrogate"]
        stepped = await client.launch(f"{POISON}:surrogate_step", name="surrogate")
        assert await client.result(stepped.id, timeout=30) == "step failed: SerializationError"
        hello = await client.launch("examples.hello_world:main", name="still alive")
        assert (await client.wait(hello.id, timeout=30)).state == "complete"
    assert worker.process is not None and worker.process.returncode is None


async def test_an_unprintable_error_is_described(db_url: str, worker: WorkerProcess) -> None:
    async with durable.Client(db_url) as client:
        task = await client.launch(f"{POISON}:unprintable", name="unprintable")
        info = await client.wait(task.id, timeout=30)
        assert info.error is not None
        assert "str() failed" in info.error["message"]
