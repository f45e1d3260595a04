"""Step code, run by the worker: async steps awaited on its loop, sync ones in threads.

The replay engine decides when a step runs and records what it returned; running the user's
code is the worker's job (the engine does no I/O of its own).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from durable import metrics, tracing
from durable.replay.engine import utcnow


class StepHost:
    """The engine's host: the clock, the lease check before a step, and step calls."""

    def __init__(self, lease_guard: Callable[[], Awaitable[None]] | None = None) -> None:
        self._lease_guard = lease_guard

    def now(self) -> datetime:
        """The wall clock, UTC-aware."""
        return utcnow()

    async def sleep(self, seconds: float, *, interruptible: bool = False) -> None:
        """Wait ``seconds`` of wall-clock time."""
        del interruptible  # a worker's run is suspended and woken instead
        await asyncio.sleep(seconds)

    async def admit_step(self) -> None:
        """Return once this worker is known to still hold its tasks (a recent heartbeat): a
        worker frozen past its lease must not start a step another worker may have run."""
        if self._lease_guard is not None:
            await self._lease_guard()

    def call_step(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        label: str,
    ) -> Awaitable[Any]:
        """Run the step's code once and return its result."""
        del label
        return metrics.timed_step(tracing.traced_step(fn, call(fn, args, kwargs, timeout)))


async def call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    """``fn(*args, **kwargs)``: awaited if async, in a thread if sync (it cannot block the
    worker's other tasks), within ``timeout`` seconds if given."""
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "func", None)
    )
    awaitable: Awaitable[Any]
    if is_async:
        awaitable = fn(*args, **kwargs)
    else:
        call_in_context = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        awaitable = asyncio.get_running_loop().run_in_executor(None, call_in_context)
    result = await (awaitable if timeout is None else asyncio.wait_for(awaitable, timeout))
    if inspect.isawaitable(result):  # a sync callable that returned a coroutine
        result = await result
    return result
