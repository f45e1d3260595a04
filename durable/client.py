"""Client: launch tasks and watch them from outside workflows (apps, scripts, the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from durable import cron as cron_rules
from durable import serialization, tracing
from durable.config import resolve_database_url, uses_embedded_default
from durable.errors import (
    DurableError,
    PromiseRejected,
    TaskCancelled,
    TaskFailed,
    TaskNotFound,
    Timeout,
)
from durable.models import (
    Debounce,
    Event,
    PromiseState,
    QueueInfo,
    ScheduleInfo,
    TaskHandle,
    TaskInfo,
    TaskState,
    WorkerInfo,
)
from durable.store.flow import KEEP
from durable.store.listen import Listener
from durable.store.store import Store
from durable.store.wakeups import PROMISES_CHANNEL, TASK_EVENTS_CHANNEL
from durable.workflow import Workflow, declared_queue, reference_of

# What a schedule's tick does while the previous run is unfinished (SPEC 12).
OVERLAPS = ("skip", "buffer_one", "allow", "cancel_other")

# Task ids are Postgres bigints, and so is a list's limit.
MAX_BIGINT = 2**63 - 1

# Waiters are woken by NOTIFY; this is how often they look anyway, in case a wake-up was lost
# (its sender died between its commit and the NOTIFY: see durable.store.wakeups).
FALLBACK_RECHECK = 2.0


class Client:
    """A connection to the durable database for launching and following tasks.

    Use it as ``async with durable.Client(url) as client:``. Without a URL it resolves one
    like the CLI does (``DURABLE_DATABASE_URL``, ``DATABASE_URL``, else the embedded server).

    Args:
        database_url: the durable database.
        check_schema: refuse a database whose schema is not this code's (default True).
    """

    def __init__(self, database_url: str | None = None, *, check_schema: bool = True) -> None:
        self._explicit_url = database_url
        self._check_schema = check_schema
        self._store: Store | None = None
        self.url: str | None = None
        self._listener: Listener | None = None
        self._listener_lock = asyncio.Lock()
        self._watchers: dict[int, set[asyncio.Event]] = {}
        self._promise_watchers: dict[str, set[asyncio.Event]] = {}

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection pool (``async with`` does this)."""
        if self._store is None:
            if self.url is None:
                # The embedded default may start a server: keep the event loop free meanwhile.
                self.url = await asyncio.to_thread(resolve_database_url, self._explicit_url)
            self._store = await Store.open(
                self._resolved_url(),
                max_size=4,
                check_schema=self._check_schema,
                migrate=uses_embedded_default(self._explicit_url),
            )

    async def close(self) -> None:
        """Close the connection pool and the notification listener."""
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise DurableError("the client is not connected: use `async with durable.Client()`")
        return self._store

    # -- launching ---------------------------------------------------------------------------

    async def launch(
        self,
        workflow: Workflow | str,
        *,
        name: str | None = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        key: str | None = None,
        queue: str | None = None,
        priority: int = 0,
        concurrency_key: str | None = None,
        debounce: Debounce | None = None,
    ) -> TaskHandle:
        """Create a task running ``workflow`` (a ``@durable.workflow`` or ``"module:func"``).

        Args:
            workflow: what to run.
            name: the task's human label (default: the workflow's reference).
            args: JSON positional arguments.
            kwargs: JSON keyword arguments.
            key: idempotency key; a launch with an existing key returns that task
                (``created`` is False) instead of creating a second one.
            queue: the queue (default: the one the workflow declares, else ``"default"``; a
                reference string is not imported to find it, only looked up in modules this
                process has already imported).
            priority: claim order within the queue: smaller first (default 0), then launch
                order.
            concurrency_key: the key whose slots the task takes when its queue has a
                ``key_concurrency`` (``configure_queue``).
            debounce: a `durable.Debounce`: start later, and let later launches with its key
                replace this task's arguments until it starts. Not with ``key``.

        Raises:
            durable.SerializationError: an argument, or the name, key or queue, holds what
                cannot be stored (not JSON, a NUL character, a lone surrogate); nothing is
                written.
            TypeError: ``args`` is not a list or tuple, ``kwargs`` not a dict, or a name,
                key or queue not a string.
            ValueError: ``workflow`` is a string that is not ``module:function``, or both
                ``key`` and ``debounce`` are given.
        """
        reference = serialization.check_text(reference_of(workflow), "the workflow reference")
        _check_flow(priority, concurrency_key, debounce, key)
        if isinstance(args, (str, bytes)) or not isinstance(args, (list, tuple)):
            raise TypeError(f"args must be a list or tuple, not {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")
        if queue is None:
            queue = declared_queue(workflow) or "default"
        for value, what in ((name, "the task name"), (key, "the key"), (queue, "the queue")):
            if value is not None:
                serialization.check_text(value, what)
        args_json = serialization.dumps(list(args), "launch args")
        kwargs_json = serialization.dumps(dict(kwargs or {}), "launch kwargs")
        if debounce is not None:
            task_id, task_name, task_workflow, created = await self.store.debounce_task(
                name=name if name is not None else reference,
                workflow=reference,
                args_json=args_json,
                kwargs_json=kwargs_json,
                queue=queue,
                priority=priority,
                concurrency_key=concurrency_key,
                debounce_key=debounce.key,
                delay=debounce.delay,
                max_delay=debounce.max_delay,
            )
            return TaskHandle(id=task_id, name=task_name, workflow=task_workflow, created=created)
        task_id, task_name, task_workflow, created = await self.store.create_task(
            name=name if name is not None else reference,
            workflow=reference,
            args_json=args_json,
            kwargs_json=kwargs_json,
            key=key,
            queue=queue,
            priority=priority,
            concurrency_key=concurrency_key,
            trace_json=tracing.launch_context(),
        )
        return TaskHandle(id=task_id, name=task_name, workflow=task_workflow, created=created)

    # -- flow control --------------------------------------------------------------------------

    async def configure_queue(
        self,
        name: str,
        *,
        concurrency: int | object | None = KEEP,
        key_concurrency: int | object | None = KEEP,
        rate: tuple[int, float] | object | None = KEEP,
        paused: bool | object = KEEP,
    ) -> None:
        """Set a queue's flow control, stored in the database and applied by every worker.

        Settings not given stay as they are; ``None`` removes a limit. Workers running now
        apply the change from their next claim.

        Args:
            name: the queue.
            concurrency: at most this many tasks of the queue held by workers at once,
                fleet-wide.
            key_concurrency: at most this many started and unfinished tasks (running or
                suspended) per ``concurrency_key``.
            rate: ``(N, seconds)``: at most N task starts per window of that many seconds.
            paused: True: nothing of the queue is claimed; False: claimed again.

        Raises:
            ValueError: a limit below its minimum (concurrency 0, key_concurrency and rate 1,
                a window of more than 0 seconds).
            TypeError: a setting of the wrong type.
        """
        serialization.check_text(name, "the queue")
        if concurrency is not KEEP and concurrency is not None:
            _count(concurrency, "concurrency", 0)
        if key_concurrency is not KEEP and key_concurrency is not None:
            _count(key_concurrency, "key_concurrency", 1)
        if rate is not KEEP and rate is not None:
            if not isinstance(rate, tuple) or len(rate) != 2:
                raise TypeError("rate must be a tuple (N, seconds)")
            _count(rate[0], "rate N", 1)
            period = rate[1]
            if isinstance(period, bool) or not isinstance(period, (int, float)) or period <= 0:
                raise ValueError(f"a rate window must be a number of seconds > 0, not {period!r}")
            rate = (rate[0], float(period))
        if paused is not KEEP and not isinstance(paused, bool):
            raise TypeError("paused must be True or False")
        await self.store.configure_queue(
            name,
            concurrency=concurrency,
            key_concurrency=key_concurrency,
            rate=rate,
            paused=paused,
        )

    async def queues(self) -> list[QueueInfo]:
        """Queues that have settings or unfinished tasks, with their counts, by name."""
        return await self.store.list_queues()

    # -- schedules -----------------------------------------------------------------------------

    async def schedule(
        self,
        name: str,
        workflow: Workflow | str,
        *,
        cron: str,
        timezone: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        overlap: str = "skip",
        catch_up: float = 0.0,
    ) -> ScheduleInfo:
        """Add (or replace) the cron schedule ``name``; workers launch its ticks.

        Each tick launches one task with key ``schedule:NAME:ISO-TIME`` however many workers
        run; a workflow with a ``scheduled_at`` parameter gets the tick (ISO 8601, UTC).

        Args:
            name: the schedule's name.
            workflow: what each tick runs.
            cron: five fields (minute hour day month weekday), or six with seconds first.
            timezone: the zone the cron expression is read in (``zoneinfo`` name).
            args: JSON positional arguments of every run.
            kwargs: JSON keyword arguments of every run.
            queue: the queue (default: the workflow's, else ``"default"``).
            overlap: what a tick does while the previous run is unfinished: ``skip`` it,
                ``buffer_one`` (run once after it), ``allow`` (run anyway), or
                ``cancel_other`` (cancel the previous run, then run).
            catch_up: seconds: ticks missed while no worker ran are launched if no older
                than this (0: skipped).

        Raises:
            ValueError: a bad cron expression, time zone, overlap or catch-up.
        """
        reference = serialization.check_text(reference_of(workflow), "the workflow reference")
        serialization.check_text(name, "the schedule name")
        if overlap not in OVERLAPS:
            raise ValueError(f"overlap must be one of {', '.join(OVERLAPS)}, not {overlap!r}")
        if isinstance(catch_up, bool) or not isinstance(catch_up, (int, float)) or catch_up < 0:
            raise ValueError(f"catch_up must be a number of seconds >= 0, not {catch_up!r}")
        next_at = cron_rules.next_after(cron, timezone, datetime.now(UTC))
        serialization.dumps(list(args), "schedule args")
        serialization.dumps(dict(kwargs or {}), "schedule kwargs")
        return await self.store.upsert_schedule(
            ScheduleInfo(
                name=name,
                workflow=reference,
                cron=cron,
                timezone=timezone,
                args=list(args),
                kwargs=dict(kwargs or {}),
                queue=queue or declared_queue(workflow) or "default",
                overlap=overlap,
                catch_up=float(catch_up),
                paused=False,
                next_at=next_at,
                last_task_id=None,
            )
        )

    async def schedules(self) -> list[ScheduleInfo]:
        """Every schedule with its next fire time, by name."""
        return await self.store.list_schedules()

    async def pause_schedule(self, name: str) -> ScheduleInfo:
        """Stop firing ``name`` (``durable.ScheduleNotFound`` if none)."""
        return await self.store.pause_schedule(name, True, None)

    async def resume_schedule(self, name: str) -> ScheduleInfo:
        """Fire ``name`` again from its next tick after now (missed ticks are not caught up)."""
        info = await self.store.get_schedule(name)
        next_at = cron_rules.next_after(info.cron, info.timezone, datetime.now(UTC))
        return await self.store.pause_schedule(name, False, next_at)

    async def delete_schedule(self, name: str) -> None:
        """Delete ``name``; the tasks it launched stay."""
        await self.store.delete_schedule(name)

    async def trigger_schedule(self, name: str) -> TaskHandle:
        """Launch one run of ``name`` now, outside its ticks (key ``schedule:NAME:NOW``)."""
        [handle] = await self.store.launch_ticks(name, [datetime.now(UTC)])
        return handle

    async def backfill_schedule(
        self, name: str, start: datetime, end: datetime
    ) -> list[TaskHandle]:
        """Launch every tick of ``name`` from ``start`` to ``end`` (both included) that has no
        task yet; ticks that have one return it (``created`` False).

        Raises:
            ValueError: naive times, or ``end`` before ``start``.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("backfill times need a time zone (ISO 8601 with an offset)")
        if end < start:
            raise ValueError("backfill: --to is before --from")
        info = await self.store.get_schedule(name)
        ticks = cron_rules.ticks_between(info.cron, info.timezone, start, end)
        return await self.store.launch_ticks(name, ticks)

    async def fork(self, task_id: int, *, at: int, name: str | None = None) -> TaskHandle:
        """Create a new task that replays task ``task_id``'s history before seq ``at``.

        The fork runs the same workflow with the same args, kwargs and queue. Its event log
        starts as a copy of the original's events with ``seq < at``: those effects are not
        performed again, their recorded outcomes are replayed, and the fork runs on from
        there. A running original may be forked (what it has recorded so far is copied).

        Args:
            task_id: the task to fork.
            at: the first seq not copied (0: no event, the workflow starts afresh).
            name: the fork's name (default: ``"<name> (fork of <id> at <at>)"``).

        Raises:
            durable.TaskNotFound: no such task.
            ValueError: ``at`` is negative.
        """
        if at < 0:
            raise ValueError(f"a fork's seq must be 0 or more, not {at}")
        fork_id, fork_name, workflow = await self.store.fork_task(task_id, at, name)
        return TaskHandle(id=fork_id, name=fork_name, workflow=workflow, created=True)

    # -- reading -----------------------------------------------------------------------------

    async def get(self, task_id: int) -> TaskInfo:
        """The task with this id (``durable.TaskNotFound`` if none)."""
        return await self.store.get_task(_task_id(task_id))

    async def list_tasks(
        self, *, state: str | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[TaskInfo]:
        """Tasks, newest first.

        Raises:
            ValueError: an unknown state, or a limit that is not from 1 to 2**63 - 1.
        """
        if state is not None:
            state = TaskState(state).value
        if workflow is not None:
            serialization.check_text(workflow, "the workflow filter")
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be an integer, not {type(limit).__name__}")
        if not 1 <= limit <= MAX_BIGINT:
            raise ValueError(f"limit must be from 1 to {MAX_BIGINT}, not {limit}")
        return await self.store.list_tasks(state=state, workflow=workflow, limit=limit)

    async def events(self, task_id: int) -> list[Event]:
        """The task's event log in seq order."""
        await self.store.task_state(_task_id(task_id))
        return await self.store.list_events(task_id)

    async def workers(self) -> list[WorkerInfo]:
        """Registered workers."""
        return await self.store.list_workers()

    async def tail(self, task_id: int, *, follow: bool = True) -> AsyncIterator[str]:
        """The task's log lines from the first; with ``follow``, until the task is final.

        New lines are announced by NOTIFY; a slow re-check covers a lost announcement.
        """
        # unknown id: TaskNotFound before anything else
        await self.store.task_state(_task_id(task_id))
        if not follow:
            for line in await self.store.read_logs(task_id, -1):
                yield line.line
            return
        async with self._watch(task_id) as changed:
            last = -1
            while True:
                changed.clear()
                state = await self.store.task_state(task_id)
                for line in await self.store.read_logs(task_id, last):
                    last = line.line_no
                    yield line.line
                if state.is_final:
                    # The final write carries the last lines: one more read catches any that
                    # landed between the two reads above.
                    for line in await self.store.read_logs(task_id, last):
                        last = line.line_no
                        yield line.line
                    return
                await _woken_or_fallback(changed)

    async def wait(self, task_id: int, timeout: float | None = None) -> TaskInfo:
        """Wait until the task is final and return it; ``durable.Timeout`` if it is not in time."""
        _task_id(task_id)
        async with self._watch(task_id) as changed:
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        changed.clear()
                        info = await self.store.get_task(task_id)
                        if info.state.is_final:
                            return info
                        await _woken_or_fallback(changed)
            except TimeoutError:
                raise Timeout(f"task {task_id} did not finish within {timeout} s") from None

    async def result(self, task_id: int, timeout: float | None = None) -> Any:
        """The task's result once it completes.

        Raises:
            durable.TaskFailed: the task failed (``error_type``, ``error_message``).
            durable.TaskCancelled: the task was cancelled.
            durable.Timeout: it did not end within ``timeout`` seconds.
        """
        info = await self.wait(task_id, timeout)
        if info.state == TaskState.COMPLETE:
            return info.result
        if info.state == TaskState.CANCELLED:
            raise TaskCancelled(f"task {task_id} was cancelled", task_id=task_id)
        raise TaskFailed.from_error(f"task {task_id}", task_id, info.error)

    # -- control -----------------------------------------------------------------------------

    async def cancel(self, task_id: int) -> TaskState:
        """Request cancellation; returns the state right after the request.

        A pending or suspended task is cancelled at once; a running one is told and ends
        ``cancelled`` at its current await; a final task is left as it is.
        """
        _before, after = await self.store.cancel_task(_task_id(task_id))
        return after

    async def retry(self, task_id: int) -> TaskState:
        """Put a failed or cancelled task back to pending, keeping its recorded events.

        Returns the state after the call (unchanged for a task that is not failed or
        cancelled).
        """
        _before, after = await self.store.retry_task(_task_id(task_id))
        return after

    # -- promises and notifications ----------------------------------------------------------

    async def resolve(self, promise_id: str, value: Any = None) -> Any:
        """Resolve a durable promise (at most once); returns the value that won.

        Raises:
            durable.PromiseRejected: it had been rejected before.
        """
        serialization.check_text(promise_id, "a promise id")
        value_json = serialization.dumps(value, f"promise {promise_id!r} value")
        won = await self.store.complete_promise(promise_id, "resolved", value_json, None)
        if won.state == "rejected":
            raise PromiseRejected(won.message or f"promise {promise_id!r} was rejected")
        return won.value

    async def reject(self, promise_id: str, message: str) -> Any:
        """Reject a durable promise (at most once).

        Returns the value that won: None when a rejection won, else the resolved value.

        Raises:
            TypeError: ``message`` is not a string.
            durable.SerializationError: the id or message holds a NUL or a lone surrogate.
        """
        serialization.check_text(promise_id, "a promise id")
        serialization.check_text(message, "a rejection message")
        won = await self.store.complete_promise(promise_id, "rejected", None, message)
        return won.value if won.state == "resolved" else None

    async def peek(self, promise_id: str) -> PromiseState:
        """A promise's state (pending, resolved or rejected) without waiting."""
        serialization.check_text(promise_id, "a promise id")
        return await self.store.peek_promise(promise_id)

    async def wait_promise(self, promise_id: str, timeout: float | None = None) -> Any:
        """Wait for a promise to be completed and return its value (woken by NOTIFY).

        Raises:
            durable.PromiseRejected: it was rejected.
            durable.Timeout: it was not completed within ``timeout`` seconds.
        """
        serialization.check_text(promise_id, "a promise id")
        changed = asyncio.Event()
        await self._ensure_listener()
        self._promise_watchers.setdefault(promise_id, set()).add(changed)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed.clear()
                    state = await self.store.peek_promise(promise_id)
                    if state.state == "resolved":
                        return state.value
                    if state.state == "rejected":
                        raise PromiseRejected(state.message or f"promise {promise_id!r} rejected")
                    await _woken_or_fallback(changed)
        except TimeoutError:
            raise Timeout(f"promise {promise_id!r} was not completed within {timeout} s") from None
        finally:
            watchers = self._promise_watchers.get(promise_id, set())
            watchers.discard(changed)
            if not watchers:
                self._promise_watchers.pop(promise_id, None)

    async def notify(self, task_id: int, event: str, data: Any = None) -> None:
        """Send a notification to a task's mailbox (kept until the task receives it).

        Raises:
            durable.TaskNotFound: no such task.
            durable.TaskFinished: the task is final and will never receive it.
        """
        serialization.check_text(event, "the notification event")
        data_json = serialization.dumps(data, "notification data")
        await self.store.send_notification(_task_id(task_id), event, data_json)

    # -- schema ------------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Upgrade the database schema to this code's head (safe to run twice, or at once)."""
        from durable.store import migrate

        await migrate.upgrade(self._resolved_url())

    async def schema_is_current(self) -> bool:
        """Whether the database schema is at this code's head."""
        from durable.store import migrate

        return await migrate.is_at_head(self._resolved_url())

    def _resolved_url(self) -> str:
        if self.url is None:
            self.url = resolve_database_url(self._explicit_url)
        return self.url

    # -- internals ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _watch(self, task_id: int) -> AsyncIterator[asyncio.Event]:
        """An event set whenever the task logs a line, suspends or ends (and on reconnects).

        All watches of a client share one LISTEN connection.
        """
        changed = asyncio.Event()
        await self._ensure_listener()
        self._watchers.setdefault(task_id, set()).add(changed)
        try:
            yield changed
        finally:
            watchers = self._watchers.get(task_id)
            if watchers is not None:
                watchers.discard(changed)
                if not watchers:
                    del self._watchers[task_id]

    async def _ensure_listener(self) -> None:
        async with self._listener_lock:
            if self._listener is not None:
                return
            listener = Listener(
                self._resolved_url(),
                [TASK_EVENTS_CHANNEL, PROMISES_CHANNEL],
                self._on_notify,
                on_reconnect=self._wake_all_watchers,
            )
            await listener.start()
            self._listener = listener

    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == PROMISES_CHANNEL:
            for changed in self._promise_watchers.get(payload, ()):
                changed.set()
            return
        task_id, _, _what = payload.partition(":")
        with contextlib.suppress(ValueError):
            for changed in self._watchers.get(int(task_id), ()):
                changed.set()

    def _wake_all_watchers(self) -> None:
        # Notifications may have been missed while reconnecting: everyone looks again.
        for watchers in [*self._watchers.values(), *self._promise_watchers.values()]:
            for changed in watchers:
                changed.set()


async def _woken_or_fallback(changed: asyncio.Event) -> None:
    """Until ``changed`` is set, or FALLBACK_RECHECK seconds have passed."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(changed.wait(), FALLBACK_RECHECK)


def _task_id(task_id: int) -> int:
    """``task_id`` if it can name a task; TaskNotFound for a number no task can have."""
    if isinstance(task_id, bool) or not isinstance(task_id, int):
        raise TypeError(f"a task id is an integer, not {type(task_id).__name__}")
    if not 0 <= task_id <= MAX_BIGINT:
        raise TaskNotFound(f"no task with id {task_id}")
    return task_id


def _count(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, not {value}")
    return value


def _check_flow(
    priority: int, concurrency_key: str | None, debounce: Debounce | None, key: str | None
) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an integer, not {type(priority).__name__}")
    if not -(2**31) <= priority < 2**31:
        raise ValueError(f"priority must fit in 32 bits, not {priority}")
    if concurrency_key is not None:
        serialization.check_text(concurrency_key, "the concurrency key")
    if debounce is not None:
        if not isinstance(debounce, Debounce):
            raise TypeError("debounce must be a durable.Debounce")
        serialization.check_text(debounce.key, "the debounce key")
        if key is not None:
            raise ValueError("a launch takes a key or a debounce, not both")
