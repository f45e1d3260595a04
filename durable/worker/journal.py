"""The store seen as the replay engine's journal: fenced writes that survive a flaky database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from durable import serialization, tracing
from durable.errors import DatabaseUnavailable
from durable.replay import history
from durable.replay.control import LeaseLost
from durable.replay.journal import NewEvent, Writes
from durable.store.store import Batch, Store
from durable.store.store import LeaseLost as StoreLeaseLost
from durable.store.wakeups import Wakeup
from durable.worker.outage import OUTAGE

T = TypeVar("T")


def to_batch(writes: Writes) -> Batch:
    """Column arrays for one RECORD/FINISH statement."""
    batch = Batch.empty()
    for event in writes.events:
        batch.seqs.append(event.seq)
        batch.kinds.append(event.kind)
        batch.labels.append(event.label)
        batch.payloads.append(event.payload)
    for line_no, line in writes.lines:
        batch.line_nos.append(line_no)
        batch.lines.append(line)
    return batch


async def persist(operation: Callable[[], Awaitable[T]], *, max_backoff: float = 5.0) -> T:
    """Run a write until it lands: every durable write is idempotent (upserts, fenced).

    A lost connection is retried with capped backoff; losing the lease ends the run.
    """
    backoff = 0.05
    while True:
        try:
            result = await operation()
        except StoreLeaseLost as error:
            raise LeaseLost(str(error)) from None
        except DatabaseUnavailable as error:
            OUTAGE.failed("write", error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
        else:
            OUTAGE.recovered()
            return result


class StoreJournal:
    """Journal over the store for one claim of one task (its lease is the fencing token)."""

    def __init__(self, store: Store, task_id: int, lease: int) -> None:
        self.store = store
        self.task_id = task_id
        self.lease = lease

    async def write(self, writes: Writes) -> None:
        """Record events and lines, fenced by the lease."""
        if not writes:
            return
        batch = to_batch(writes)
        await persist(lambda: self.store.record(self.task_id, self.lease, batch))

    @tracing.traced("durable.transaction")
    async def transaction(
        self, seq: int, kind: str, label: str, body: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        """The user's function and its event, in one fenced transaction."""
        payload: dict[str, Any] = {}

        async def run(connection: Any) -> Batch:
            value = await body(connection)
            payload.clear()
            payload.update(status="ok", value=value)
            text = serialization.dumps(payload, f"{kind} {label!r} result")
            return to_batch(Writes(events=[NewEvent(seq, kind, label, text)]))

        recorded = await persist(
            lambda: self.store.in_transaction(self.task_id, self.lease, seq, run)
        )
        return payload if recorded is None else json.loads(recorded)

    async def peek_promise(self, promise_id: str) -> tuple[str, Any, str | None]:
        """A promise's state now (a read; nothing recorded)."""
        state = await persist(lambda: self.store.peek_promise(promise_id))
        return state.state, state.value, state.message

    async def complete_promise(
        self, seq: int, label: str, promise_id: str, state: str, value: Any, message: str | None
    ) -> dict[str, Any]:
        """Complete the promise and record the winner in one fenced transaction."""
        value_json = None if value is None else serialization.dumps(value, "promise value")
        payload: dict[str, Any] = {}
        wakeups: list[Wakeup] = []

        async def run(connection: Any) -> Batch:
            won, woken = await Store.complete_promise_on(
                connection, promise_id, state, value_json, message
            )
            wakeups[:] = woken
            payload.clear()
            payload.update(state=won.state, value=won.value, message=won.message)
            text = serialization.dumps(payload, f"promise {promise_id!r}")
            kind = history.RESOLVE if state == "resolved" else history.REJECT
            return to_batch(Writes(events=[NewEvent(seq, kind, label, text)]))

        recorded = await persist(
            lambda: self.store.in_transaction(self.task_id, self.lease, seq, run)
        )
        # Committed (now or by an attempt whose reply was lost): the waiters may look. An
        # attempt that rolled back may have queued these too; a needless wake-up costs nothing.
        self.store.wakeups.send_all(wakeups)
        return payload if recorded is None else dict(json.loads(recorded))

    async def consume_notification(self, seq: int, label: str) -> dict[str, Any] | None:
        """Receive the oldest unread notification and record it in one fenced transaction."""
        payload: dict[str, Any] = {}

        async def run(connection: Any) -> Batch:
            note = await Store.consume_notification_on(connection, self.task_id, seq)
            payload.clear()
            if note is None:
                return Batch.empty()
            created_at = note.created_at.isoformat()
            payload.update(status="ok", event=note.event, data=note.data, created_at=created_at)
            text = serialization.dumps(payload, "notification")
            return to_batch(Writes(events=[NewEvent(seq, history.NOTIFICATION, label, text)]))

        recorded = await persist(
            lambda: self.store.in_transaction(self.task_id, self.lease, seq, run)
        )
        if recorded is not None:
            return dict(json.loads(recorded))
        return payload or None

    @tracing.traced("durable.child.launch")
    async def launch_children(
        self, children: list[tuple[int, str, dict[str, Any]]]
    ) -> dict[int, dict[str, Any]]:
        """Create children and record their launches, all in one fenced transaction."""
        prepared = [
            (
                seq,
                label,
                {
                    **spec,
                    "args": serialization.dumps(spec["args"], f"child {label!r} args"),
                    "kwargs": serialization.dumps(spec["kwargs"], f"child {label!r} kwargs"),
                },
            )
            for seq, label, spec in children
        ]
        return await persist(lambda: self.store.launch_children(self.task_id, self.lease, prepared))

    async def task_outcome(self, task_id: int) -> tuple[str, Any, Any]:
        """A task's (state, result, error) now."""
        return await persist(lambda: self.store.task_outcome(task_id))
