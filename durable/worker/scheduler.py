"""The schedule loop every worker runs: fire due ticks of cron schedules (SPEC 12).

Every worker runs it; the schedule row lock (SKIP LOCKED) and each tick's task key make each
tick launch once however many run. It sleeps until the next tick, wakes early when a schedule
is added or changed (NOTIFY durable_schedules), and looks every `BUFFER_RECHECK` seconds while
a tick is buffered (overlap buffer_one waits for a run to end, which it is not told about).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from datetime import UTC, datetime

import structlog

from durable.errors import DatabaseUnavailable, DurableError
from durable.store.store import Store
from durable.worker.loader import Loader

log = structlog.get_logger("durable.scheduler")

BUFFER_RECHECK = 0.5
# Never sleep longer than this: a schedule changed while a notification was missed is seen.
MAX_SLEEP = 30.0


class Scheduler:
    """Fires the due ticks of every schedule, in a worker."""

    def __init__(self, store: Store, loader: Loader) -> None:
        self._store = store
        self._loader = loader
        self.changed = asyncio.Event()

    def _wants_scheduled_at(self, reference: str) -> bool:
        """Whether the workflow has a ``scheduled_at`` parameter (or ``**kwargs``)."""
        try:
            target = self._loader.load(reference)
        except (DurableError, ImportError):
            return False
        parameters = inspect.signature(target.fn).parameters.values()
        return any(
            p.name == "scheduled_at" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
        )

    async def run(self) -> None:
        """Until cancelled."""
        backoff = 0.1
        while True:
            self.changed.clear()
            try:
                launched = await self._store.fire_due(self._wants_scheduled_at)
                if launched:
                    log.info("launched scheduled tasks", launched=launched)
                next_at, buffered = await self._store.next_schedule()
                backoff = 0.1
            except DatabaseUnavailable:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            sleep = MAX_SLEEP
            if next_at is not None:
                sleep = min(sleep, (next_at - datetime.now(UTC)).total_seconds())
            if buffered:
                sleep = min(sleep, BUFFER_RECHECK)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), max(0.0, sleep))
