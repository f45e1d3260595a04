"""Store: the one class that executes ``queries.py``.

Typed methods, one round trip each (the hot writes of running tasks share theirs: see
`durable.store.group_commit`), grouped by concern in the classes it is made of:

- `durable.store.tasks.Tasks`: launch, fork, read, cancel and retry tasks (the client's side);
- `durable.store.runs.Runs`: claims, histories and the fenced writes of running tasks;
- `durable.store.promises.Promises`: durable promises and task mailboxes;
- `durable.store.fleet.Fleet`: worker registration, heartbeats and takeover;
- `durable.store.flow.Flow`: queue settings, claims of limited queues, debounced launches;
- `durable.store.schedules.Schedules`: cron schedules and the firing of their ticks;

all on `durable.store.access.StoreAccess`, the one way they reach the database: asyncpg's
connection errors become ``DatabaseUnavailable`` there, and fenced transactions raise
``LeaseLost``; nothing above the store sees asyncpg exceptions. After a write commits, the
store queues the wake-ups that announce it (`durable.store.wakeups`). The values it takes and
returns are in `durable.store.records`.
"""

from __future__ import annotations

import asyncpg

from durable.errors import SchemaOutdated
from durable.store import queries
from durable.store.access import LeaseLost
from durable.store.fleet import Fleet
from durable.store.flow import Flow
from durable.store.group_commit import GroupCommit
from durable.store.overview import Overview
from durable.store.pool import create_pool
from durable.store.promises import Promises
from durable.store.records import Batch, ClaimedTask
from durable.store.revision import SCHEMA_REVISION
from durable.store.runs import Runs
from durable.store.schedules import Schedules
from durable.store.tasks import Tasks

# The worker's modules import these from here.
__all__ = ["Batch", "ClaimedTask", "LeaseLost", "Store"]


class Store(Tasks, Runs, Promises, Fleet, Flow, Schedules, Overview):
    """Typed access to the durable schema over an asyncpg pool."""

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        super().__init__(url, pool)
        # The hot writes of running tasks share statements and commits (group_commit.py).
        self._records = GroupCommit(self._send_records, key=lambda w: w.task_id)
        self._finishes = GroupCommit(self._send_finishes, key=lambda w: w.task_id)
        # Launches without a key never conflict; two with the same key go one after the other.
        self._launches = GroupCommit(
            self._send_launches, key=lambda launch: launch.key or id(launch)
        )

    @classmethod
    async def open(
        cls, url: str, *, max_size: int = 10, check_schema: bool = True, migrate: bool = False
    ) -> Store:
        """Open a pool; with ``check_schema`` refuse a database that is not migrated to head.

        With ``migrate`` (the embedded default, a database durable owns), an outdated schema
        is upgraded instead of refused.
        """
        pool = await create_pool(url, max_size=max_size)
        store = cls(url, pool)
        try:
            if check_schema:
                try:
                    await store.check_schema()
                except SchemaOutdated:
                    if not migrate:
                        raise
                    from durable.store import migrate as migrations

                    await migrations.upgrade(url)
                    await store.check_schema()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        """Send the wake-ups still queued, then close the pool (waits for connections in use)."""
        await self.wakeups.flush()
        await self.pool.close()

    async def check_schema(self) -> None:
        """Raise SchemaOutdated unless the database is at this code's schema revision."""
        try:
            row = await self._fetchrow(queries.SCHEMA_REVISION)
        except asyncpg.exceptions.UndefinedTableError:
            row = None
        current = None if row is None else row["version_num"]
        if current == SCHEMA_REVISION:
            return
        if current is None:
            raise SchemaOutdated("the database has no durable schema: run `durable migrate`")
        if current < SCHEMA_REVISION:
            raise SchemaOutdated(
                f"the database schema ({current}) is older than this code ({SCHEMA_REVISION}): "
                "run `durable migrate`"
            )
        raise SchemaOutdated(
            f"the database schema ({current}) is newer than this code ({SCHEMA_REVISION}): "
            "upgrade durable-engine"
        )
