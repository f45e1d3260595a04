"""Fixtures for tests that run real durable-worker processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.helpers.processes import WorkerProcess

# Short timings so that takeover after a kill happens within a couple of seconds.
FAST = ("--heartbeat-interval", "0.2", "--lease-timeout", "1.5", "--shutdown-grace", "2")


@pytest.fixture
async def workers(db_url: str) -> AsyncIterator[Callable[..., WorkerProcess]]:
    """A factory for worker processes on the test database; all are killed at teardown."""
    started: list[WorkerProcess] = []

    def make(*args: str) -> WorkerProcess:
        worker = WorkerProcess(db_url, *FAST, *args)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        await worker.stop()
