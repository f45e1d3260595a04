"""A cancellation that lands while a run is deciding to suspend is not lost (SPEC 7.5).

The worker's engine may already have decided to suspend when `durable cancel` flags the
running task: its NOTIFY reaches a run that is over. The suspension must then leave the task
pending (to be claimed and cancelled), not suspended with nobody to wake it.
"""

from __future__ import annotations

import pytest

import durable
from durable.store.records import Batch
from durable.store.store import Store


@pytest.mark.parametrize("promise", [False, True], ids=["timer", "promise"])
async def test_a_suspension_after_a_cancel_request_leaves_the_task_pending(
    db_url: str, promise: bool
) -> None:
    store = await Store.open(db_url)
    try:
        async with durable.Client(db_url) as client:
            task = await client.launch("tests.acceptance.workflows:sleeper", name="s", args=[60])
            (claimed,) = await store.claim("w-test", ["default"], 1)
            assert await client.cancel(task.id) == "running"  # flagged, the run goes on
            await store.suspend(
                claimed.id,
                claimed.lease,
                Batch.empty(),
                wake_at=None if promise else _far(),
                promises=["never"] if promise else (),
            )
            info = await client.get(task.id)
            assert info.state == "pending"
    finally:
        await store.close()


def _far():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(hours=1)
