"""Group commit: the writes of many running tasks in one statement and one commit.

A worker runs many tasks at once, and each of them writes after almost every step. Sent one
by one, every write pays a round trip, a statement and a commit of its own; on a small machine
those fixed costs, not the rows, are what Postgres spends its CPU on. So the store queues the
hot writes (a step's record, a task's final state) here: a write goes out at once when nothing
is in flight, and the writes that queue up while a statement is in flight go out together in
the next one (`queries.RECORD_MANY`, `queries.FINISH_MANY`). Nothing waits on a timer: an idle
worker's write has the latency of a single statement, a busy worker's writes share commits.

Each write still learns its own outcome: whether its task was still held (fencing), how many
log lines it added. Two writes of the same task never share a statement: the second waits for
the next one, so a task's writes stay in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

Request = TypeVar("Request")

# Statements in flight at once: with two, Postgres runs one while it flushes the other's commit
# (W2 on the 2-core benchmark machine: a median of 11,100 steps/s against 10,300 with one).
MAX_IN_FLIGHT = 2

# Writes per statement at most: enough to share a commit among a busy worker's tasks, few
# enough that one statement stays short.
MAX_BATCH = 128


class GroupCommit(Generic[Request]):
    """Sends queued requests through ``send``, as many per call as queued meanwhile.

    ``send`` receives a list of requests and returns one result per request, in order; an
    exception it raises is every request's.
    """

    def __init__(
        self,
        send: Callable[[list[Request]], Awaitable[list[Any]]],
        key: Callable[[Request], Hashable],
        *,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._send = send
        self._key = key
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[Request, asyncio.Future[Any]]] = []
        self._senders: set[asyncio.Task[None]] = set()
        # Keys in statements in flight: a task's next write waits for its previous one.
        self._in_flight_keys: set[Hashable] = set()

    async def submit(self, request: Request) -> Any:
        """Queue one request and wait for its result."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._start_sender()
        return await future

    def _start_sender(self) -> None:
        # Counted by the senders themselves (not by a done-callback, which runs a loop turn
        # later): a sender that has just found the queue empty no longer counts, so a request
        # queued right after it still gets one.
        if self._queue and len(self._senders) < self._max_in_flight:
            sender = asyncio.get_running_loop().create_task(
                self._send_queued(), name="durable-group-commit"
            )
            self._senders.add(sender)

    def _take(self) -> list[tuple[Request, asyncio.Future[Any]]]:
        """The next batch: queue order, one request per key, at most max_batch."""
        taken: list[tuple[Request, asyncio.Future[Any]]] = []
        keys: set[Hashable] = set(self._in_flight_keys)
        rest: list[tuple[Request, asyncio.Future[Any]]] = []
        for item in self._queue:
            key = self._key(item[0])
            if item[1].done():
                continue  # its caller gave up before it was sent
            if key in keys or len(taken) >= self._max_batch:
                rest.append(item)
            else:
                keys.add(key)
                taken.append(item)
        self._queue = rest
        self._in_flight_keys.update(self._key(request) for request, _ in taken)
        return taken

    async def _send_queued(self) -> None:
        try:
            await self._send_batches()
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._senders.discard(task)

    async def _send_batches(self) -> None:
        while self._queue:
            batch = self._take()
            if not batch:
                # All that is queued waits for a key in flight: the sender of that key takes
                # it once its statement is done (it loops while anything is queued).
                return
            try:
                results = await self._send([request for request, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                for _, future in self._queue:
                    future.cancel()
                self._queue = []
                raise
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
            finally:
                self._in_flight_keys.difference_update(self._key(r) for r, _ in batch)
