"""The workflow's own event loop: workflow code runs here, and only here, one burst at a time.

A workflow is plain asyncio (gather, TaskGroup, create_task, wait, as_completed, timeout...).
If it ran on the worker's loop, the order in which its coroutines resume would follow the order
in which effects happen to finish, which a replay cannot reproduce. So its coroutines run on
this loop instead, which the engine drives by hand (as Temporal's Python SDK does with its
workflow instance): ``run_ready`` runs every callback that is ready, and the callbacks they
schedule, until none is left. Then the workflow is *quiescent*: every coroutine waits on an
effect. The engine hands it exactly one outcome and runs it to quiescence again; a replay hands
the recorded outcomes in their recorded order, so the workflow takes the same path.

Timers (``call_at``/``call_later``, which ``asyncio.timeout``, ``wait_for`` and ``sleep`` use)
are durable: the engine records each as an effect and its firing as a delivered outcome, so a
timeout that fired before a step finished on the first run fires before it on every replay.
Anything else a loop offers (sockets, subprocesses, executors, signals) raises: workflow code
reaches the world through steps.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import time
from asyncio import events
from collections.abc import Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger("durable.workflow")

# Callbacks one burst may run before the workflow is judged to spin without awaiting any
# effect (``while not flag: await asyncio.sleep(0)``): it would hold the worker's loop forever.
MAX_CALLBACKS_PER_BURST = 1_000_000


class WorkflowSpins(RuntimeError):
    """The workflow ran a million callbacks without waiting on any effect."""


class TimerHost(Protocol):
    """The engine, seen from the loop: it makes each loop timer a durable one."""

    def start_timer(self, handle: DurableTimerHandle) -> None:
        """Record the timer and fire ``handle`` when its deadline passes (by delivery)."""

    def cancel_timer(self, handle: DurableTimerHandle) -> None:
        """The timer was cancelled before it fired."""


class _NoTimers:
    """The timer host of a loop whose run is over: timers never fire."""

    def start_timer(self, handle: DurableTimerHandle) -> None:
        return None

    def cancel_timer(self, handle: DurableTimerHandle) -> None:
        return None


_NO_TIMERS = _NoTimers()


class DurableTimerHandle(asyncio.TimerHandle):
    """A timer of the workflow loop; ``token`` is the engine's record of it."""

    token: object = None


_LOOP_SERIALS = itertools.count(1)


class WorkflowTask(asyncio.Task[Any]):
    """A task of workflow code, hashed by creation order instead of memory address.

    asyncio keeps tasks and futures in sets (``asyncio.wait`` returns two): iterating a set
    of objects hashed by address gives an order that differs from run to run. Hashed by a
    counter, the same sequence of creations and insertions iterates in the same order.
    """

    def __init__(self, coro: Any, *, loop: WorkflowLoop, name: str | None, context: Any) -> None:
        # Set first: the task is added to asyncio's set of all tasks while it is created.
        self._durable_order = loop.count()
        super().__init__(coro, loop=loop, name=name, context=context)

    def __hash__(self) -> int:
        return self._durable_order


class WorkflowFuture(asyncio.Future[Any]):
    """A future of workflow code, hashed by creation order (see WorkflowTask)."""

    def __init__(self, *, loop: WorkflowLoop) -> None:
        self._durable_order = loop.count()
        super().__init__(loop=loop)

    def __hash__(self) -> int:
        return self._durable_order


class WorkflowLoop(asyncio.AbstractEventLoop):
    """An event loop that runs only when the engine says so, and only workflow code."""

    def __init__(self, timers: TimerHost) -> None:
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._timers: TimerHost = timers
        self._running_bursts = 0
        self._exception_handler: Any = None
        self.closed = False
        # Hashes are (loop serial << 32) | creation number: unique in the process (asyncio
        # keeps every task in one global set, where equal hashes would collide), and the same
        # low bits, hence the same order in any set of one run's tasks, on every replay.
        self._created = next(_LOOP_SERIALS) % (1 << 28) << 32
        self._epoch = time.monotonic()
        self._tasks: list[asyncio.Task[Any]] = []

    # -- what the engine drives ----------------------------------------------------------

    def run_ready(self) -> None:
        """Run ready callbacks until none is left (the workflow is quiescent).

        Runs inside a callback of the worker's loop; for the duration, this loop is the
        running loop, so ``asyncio.get_running_loop()`` in workflow code finds it.
        """
        previous = events._get_running_loop()
        events._set_running_loop(self)
        self._running_bursts += 1
        try:
            ran = 0
            while self._ready:
                handle = self._ready.popleft()
                if handle.cancelled():
                    continue
                ran += 1
                if ran > MAX_CALLBACKS_PER_BURST:
                    raise WorkflowSpins(
                        "the workflow ran a million callbacks without awaiting an effect "
                        "(busy waiting with asyncio.sleep(0)?)"
                    )
                handle._run()
        finally:
            self._running_bursts -= 1
            events._set_running_loop(previous)

    def fire(self, handle: asyncio.Handle) -> None:
        """Make a timer's callback ready (its firing was delivered)."""
        if not handle.cancelled():
            self._ready.append(handle)

    @property
    def quiescent(self) -> bool:
        """No callback is ready."""
        return not self._ready

    # -- the asyncio loop interface that workflow code uses --------------------------------

    def call_soon(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = DurableTimerHandle(when, callback, args, self, context)
        self._timers.start_timer(handle)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        if isinstance(handle, DurableTimerHandle):
            self._timers.cancel_timer(handle)

    def time(self) -> float:
        # Constant for the whole run: asyncio compares deadlines with the loop's time (a
        # timeout whose deadline has passed is scheduled with call_soon, not as a timer), and
        # a clock that moved would make that choice differ between a run and its replay. So
        # a timer's delay is counted from when it is set, always (loop.call_at converts it).
        return self._epoch

    def create_future(self) -> asyncio.Future[Any]:
        return WorkflowFuture(loop=self)

    def create_task(self, coro: Any, *, name: str | None = None, context: Any = None) -> Any:
        task = WorkflowTask(coro, loop=self, name=name, context=context)
        self._tasks.append(task)
        return task

    def detach(self) -> None:
        """Forget the engine and the run's tasks once the run is over (no reference cycles)."""
        self._timers = _NO_TIMERS
        self._tasks.clear()
        self._ready.clear()

    def unfinished_tasks(self) -> list[asyncio.Task[Any]]:
        """The workflow's tasks that have not finished (asyncio.all_tasks scans every task of
        the process; a run ending must not cost that)."""
        self._tasks = [task for task in self._tasks if not task.done()]
        return list(self._tasks)

    def count(self) -> int:
        """The next creation number (tasks and futures)."""
        self._created += 1
        return self._created

    def call_soon_threadsafe(  # type: ignore[override]
        self, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.Handle:
        raise RuntimeError("workflow code cannot be called from other threads; use a step")

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        return None

    def is_running(self) -> bool:
        return self._running_bursts > 0

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self._ready.clear()

    def get_task_factory(self) -> None:
        return None

    def set_exception_handler(self, handler: Any) -> None:
        self._exception_handler = handler

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        error = context.get("exception")
        # Tasks left pending when a run stops (a suspension drops the in-memory state on
        # purpose) say so when they are collected: not worth a log line.
        if context.get("message", "").startswith("Task was destroyed but it is pending"):
            return
        log.warning(
            "unhandled error in workflow code",
            message=context.get("message"),
            error=None if error is None else f"{type(error).__name__}: {error}",
        )

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._exception_handler is not None:
            self._exception_handler(self, context)
        else:
            self.default_exception_handler(context)

    async def shutdown_asyncgens(self) -> None:
        return None

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        return None

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> Any:  # type: ignore[override]
        raise RuntimeError("workflow code cannot run threads; run blocking code in a step")


_as_completed = asyncio.as_completed


def _ordered_as_completed(fs: Any, **kwargs: Any) -> Any:
    """``asyncio.as_completed`` that starts the coroutines it is given in the given order on
    the workflow loop (asyncio's own wraps them in the order of a set of coroutine objects,
    which is the order of their memory addresses: not the same on a replay)."""
    try:
        running = events.get_running_loop()
    except RuntimeError:
        running = None
    if isinstance(running, WorkflowLoop):
        fs = [asyncio.ensure_future(f) for f in fs]
    return _as_completed(fs, **kwargs)


asyncio.as_completed = _ordered_as_completed
