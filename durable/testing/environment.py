"""`WorkflowEnvironment`: a database of its own, a real worker in process, mocks, a virtual clock.

Each environment copies a template database migrated once per process (per pytest-xdist
worker), so it is ready in tens of milliseconds after the first. Its worker is a real
`durable.Worker` on that database, whose runs get a host of the environment's
(`clock.EnvironmentHost`): the virtual clock, and mocked steps. Its runs keep every timer in
memory (they are never suspended on one), so that moving the clock fires it; waits for a
promise, a notification or a child are suspended and woken through the database as anywhere.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import math
import os
import weakref
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from durable.client import Client
from durable.errors import DurableError
from durable.models import Event, TaskHandle
from durable.replay.history import Recorded
from durable.store.databases import create_database, drop_database, unique_name
from durable.store.migrate import upgrade
from durable.testing import prefixes
from durable.testing.clock import EnvironmentHost, Shared, VirtualClock
from durable.testing.mocks import Mocks, StepMock
from durable.worker.runner import Runner
from durable.worker.worker import Worker

# How often time skipping looks whether every task waits only on timers (real seconds), on
# top of looking each time a run starts waiting.
SKIP_POLL = 0.01

_templates: dict[str, str] = {}  # server URL -> this process's migrated template
_template_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)

TaskRef = TaskHandle | int


def _task_id(task: TaskRef) -> int:
    return task.id if isinstance(task, TaskHandle) else int(task)


async def _server_url(explicit: str | None) -> str:
    url = explicit or os.environ.get("DURABLE_TEST_DATABASE_URL")
    if url:
        return url
    import platformdirs

    from durable.store.embedded import ensure_server

    home = Path(platformdirs.user_cache_path("durable")) / "test-server"
    return await asyncio.to_thread(ensure_server, home)


async def _template(server_url: str) -> str:
    """This process's migrated template on ``server_url`` (made on first use)."""
    loop = asyncio.get_running_loop()
    lock = _template_locks.setdefault(loop, asyncio.Lock())
    async with lock:
        name = _templates.get(server_url)
        if name is None:
            name = unique_name(f"durable_envtpl_{os.getpid()}")
            url = await create_database(server_url, name)
            await upgrade(url)  # leaves no connection open: the template can be copied
            _templates[server_url] = name
            if len(_templates) == 1:
                atexit.register(_drop_templates)
        return name


def _drop_templates() -> None:
    async def drop() -> None:
        for server, name in list(_templates.items()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drop_database(server, name), 5)

    with contextlib.suppress(Exception):
        asyncio.run(drop())


class _EnvironmentWorker(Worker):
    """A worker whose runs use the environment's host and keep their timers in memory."""

    def __init__(self, shared: Shared, database_url: str, **settings: Any) -> None:
        super().__init__(database_url, **settings)
        self._shared = shared

    def _make_runner(self) -> Runner:
        assert self._store is not None
        shared = self._shared

        def host(lease_guard: Callable[[], Any] | None) -> EnvironmentHost:
            return EnvironmentHost(shared, lease_guard)

        return Runner(
            self._store,
            self.loader,
            # Timers, and waits with a deadline, stay in memory: the virtual clock fires them.
            suspend_after=math.inf,
            timer_lead=math.inf,
            lease_guard=self._ensure_lease,
            host_factory=host,
            strict=True,  # the determinism guard, always
        )

    def timer_deadline(self) -> datetime | None:
        """The earliest timer, if every run in memory waits only on timers; else None."""
        deadlines = []
        for running in self._running.values():
            engine = running.engine
            deadline = None if engine is None else engine.waits_only_on_timers()
            if deadline is None:
                return None
            deadlines.append(deadline)
        return min(deadlines, default=None)

    def holds(self) -> set[int]:
        """Ids of the tasks this worker runs now."""
        return set(self._running)


class WorkflowEnvironment:
    """A workflow test's world: its own database, a real worker in process, mocked steps and
    a virtual clock. Use as ``async with WorkflowEnvironment() as env:``.

    Args:
        time_skipping: whenever every task of the environment waits only on timers, the
            virtual clock jumps to the earliest one (a day of ``ctx.sleep`` takes
            milliseconds).
        database_url: the PostgreSQL server to make the database on (default:
            ``DURABLE_TEST_DATABASE_URL``, else the embedded server of the tests).
        app_dir: the worker's application directory (default: the current directory).
        queues: the queues its worker claims from.
        concurrency: tasks its worker runs at once (10: its connection pool then holds
            at most 12 connections, so that many environments fit under a server's
            ``max_connections``).
    """

    def __init__(
        self,
        *,
        time_skipping: bool = False,
        database_url: str | None = None,
        app_dir: str | os.PathLike[str] | None = None,
        queues: tuple[str, ...] = ("default",),
        concurrency: int = 10,
    ) -> None:
        self.time_skipping = time_skipping
        self._server_url = database_url
        self._app_dir = app_dir
        self._queues = queues
        self._concurrency = concurrency
        self._mocks = Mocks()
        self._clock = VirtualClock()
        self._poke = asyncio.Event()
        self._shared = Shared(self._clock, self._mocks, self._poke.set)
        self._database: tuple[str, str] | None = None
        self._client: Client | None = None
        self._worker: _EnvironmentWorker | None = None
        self._skipper: asyncio.Task[None] | None = None
        self.database_url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> WorkflowEnvironment:
        server = await _server_url(self._server_url)
        template = await _template(server)
        name = unique_name("durable_env")
        self.database_url = await create_database(server, name, template=template)
        self._database = (server, name)
        try:
            self._client = Client(self.database_url)
            await self._client.connect()
            self._worker = _EnvironmentWorker(
                self._shared,
                self.database_url,
                app_dir=self._app_dir,
                queues=list(self._queues),
                concurrency=self._concurrency,
                shutdown_grace=0.5,
            )
            await self._worker.start()
            if self.time_skipping:
                self._skipper = asyncio.create_task(self._skip_time())
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._skipper is not None:
            self._skipper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._skipper
        if self._worker is not None:
            await self._worker.stop()
        if self._client is not None:
            await self._client.close()
        if self._database is not None:
            await drop_database(*self._database)
            self._database = None

    @property
    def client(self) -> Client:
        """A `durable.Client` on the environment's database."""
        if self._client is None:
            raise RuntimeError("the environment is not started: use `async with`")
        return self._client

    # -- steps -------------------------------------------------------------------------------

    def mock_step(
        self,
        step: Callable[..., Any] | str,
        *,
        returns: Any = None,
        raises: BaseException | type[BaseException] | None = None,
        side_effect: Any = None,
    ) -> StepMock:
        """Run a stand-in instead of ``step`` (a step function, or the label it is recorded
        under) in this environment's workflows; the returned mock records its calls.

        ``returns``: the value; ``raises``: an exception to raise; ``side_effect``: a callable
        given the step's arguments, or a list of values and exceptions, one per call.
        """
        if raises is None and side_effect is None:
            return self._mocks.add(step, returns=returns)
        if returns is not None:
            raise TypeError("mock_step takes one of returns=, raises= or side_effect=")
        return self._mocks.add(step, raises=raises, side_effect=side_effect)

    # -- tasks -------------------------------------------------------------------------------

    async def launch(
        self,
        workflow: Any,
        *args: Any,
        name: str | None = None,
        key: str | None = None,
        queue: str | None = None,
        **kwargs: Any,
    ) -> TaskHandle:
        """Launch ``workflow`` (a workflow or a ``module:function`` reference) with these
        arguments; the environment's worker runs it."""
        reference = workflow if isinstance(workflow, str) else workflow.reference
        return await self.client.launch(
            workflow,
            name=name or reference,
            args=list(args),
            kwargs=kwargs,
            key=key,
            queue=queue,
        )

    async def result(self, task: TaskRef, timeout: float | None = None) -> Any:
        """The task's result, once it has ended (``durable.TaskFailed``,
        ``durable.TaskCancelled``, ``durable.Timeout`` after ``timeout`` real seconds)."""
        return await self.client.result(_task_id(task), timeout=timeout)

    async def resolve(self, promise_id: str, value: Any = None) -> Any:
        """Resolve durable promise ``promise_id``; the value that won."""
        return await self.client.resolve(promise_id, value)

    async def reject(self, promise_id: str, message: str) -> Any:
        """Reject durable promise ``promise_id``."""
        return await self.client.reject(promise_id, message)

    async def notify(self, task: TaskRef, event: str, data: Any = None) -> None:
        """Send a notification to the task."""
        await self.client.notify(_task_id(task), event, data)

    async def history(self, task: TaskRef) -> list[Event]:
        """The task's recorded events, in seq order."""
        return await self.client.events(_task_id(task))

    # -- time --------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The virtual clock (what ``ctx.now()`` and timers follow), UTC-aware."""
        return self._clock.now()

    async def advance(self, seconds: float) -> None:
        """Move the virtual clock ``seconds`` forward: timers due by then fire."""
        self._clock.advance(seconds)
        await asyncio.sleep(0)  # let the woken timers run

    async def _skip_time(self) -> None:
        """Jump the clock to the next timer whenever every task waits only on timers."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), SKIP_POLL)
            self._poke.clear()
            with contextlib.suppress(DurableError):
                deadline = await self._skippable()
                if deadline is not None:
                    self._clock.jump_to(deadline)

    async def _skippable(self) -> datetime | None:
        worker = self._worker
        assert worker is not None
        if self._shared.calls_in_flight or worker.timer_deadline() is None:
            return None
        # Nothing waits to be claimed, and nothing runs that this worker does not hold
        # (suspended tasks wait for a promise, a notification or a child: not the clock).
        if await self.client.list_tasks(state="pending", limit=1):
            return None
        held = worker.holds()
        running = await self.client.list_tasks(state="running", limit=len(held) + 1)
        if {task.id for task in running} - held:
            return None
        if self._shared.calls_in_flight:
            return None
        return worker.timer_deadline()  # again: the queries gave the runs time to move

    # -- replay ------------------------------------------------------------------------------

    async def check_replay(self, task: TaskRef) -> int:
        """Run the finished task again from every point a crash could have left it, and from
        its whole history, with this environment's mocks: AssertionError
        (`prefixes.ReplayCheckFailed`) on any divergence. Returns the number of runs."""
        task_id = _task_id(task)
        info = await self.client.get(task_id)
        if not info.state.is_final:
            raise RuntimeError(f"task {task_id} is {info.state.value}: check_replay needs it ended")
        assert self._worker is not None
        workflow = self._worker.loader.load(info.workflow)
        events = await self.client.events(task_id)
        finished = prefixes.Task(
            task_id=task_id,
            name=info.name,
            workflow=workflow,
            args=list(info.args),
            kwargs=dict(info.kwargs),
            state=info.state.value,
            result=info.result,
            events=tuple(Recorded(e.seq, e.kind, e.label, e.payload) for e in events),
        )
        return await prefixes.check(finished, self._mocks)
