"""The virtual clock of a test environment, and the host its runs get from it.

The clock is the wall clock plus an offset: time goes on by itself, `advance` adds to the
offset, and time skipping jumps it to the next timer. Timers wait on this clock: a run of a
test environment keeps its timers in memory (it is never suspended on a timer), so moving the
clock fires them at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from durable.replay.engine import utcnow
from durable.testing.mocks import Mocks
from durable.worker.steps import call

# How often a run that waits for a promise, a notification or a child looks again (real
# seconds): in a test environment such a wait with a deadline stays in memory, where a
# worker's run would be suspended and woken by the completion.
CONDITION_POLL = 0.02


class VirtualClock:
    """The wall clock plus an offset that `advance` and time skipping move forward."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._waiters: set[asyncio.Future[None]] = set()

    def now(self) -> datetime:
        """The virtual time, UTC-aware."""
        return utcnow() + timedelta(seconds=self._offset)

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward: timers due by then fire."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)

    def jump_to(self, when: datetime) -> None:
        """Move the clock to ``when`` if that is ahead."""
        ahead = (when - self.now()).total_seconds()
        if ahead > 0:
            self.advance(ahead)

    async def sleep(self, seconds: float, *, interruptible: bool = False) -> None:
        """Wait until the clock has moved ``seconds`` (by itself or by jumps)."""
        deadline = self.now() + timedelta(seconds=seconds)
        loop = asyncio.get_running_loop()
        while True:
            left = (deadline - self.now()).total_seconds()
            if left <= 0:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait(
                    [waiter], timeout=min(left, CONDITION_POLL) if interruptible else left
                )
            finally:
                self._waiters.discard(waiter)
            if interruptible:
                return


class Shared:
    """What every run of one environment shares: its clock and mocks, and how many steps run."""

    def __init__(self, clock: VirtualClock, mocks: Mocks, on_sleep: Callable[[], None]) -> None:
        self.clock = clock
        self.mocks = mocks
        self.on_sleep = on_sleep
        self.calls_in_flight = 0


class EnvironmentHost:
    """A run's host in a test environment: the virtual clock, and mocked steps."""

    def __init__(self, shared: Shared, lease_guard: Callable[[], Awaitable[None]] | None) -> None:
        self._shared = shared
        self._lease_guard = lease_guard

    def now(self) -> datetime:
        """The virtual clock."""
        return self._shared.clock.now()

    async def sleep(self, seconds: float, *, interruptible: bool = False) -> None:
        """Wait on the virtual clock (time skipping may jump it)."""
        self._shared.on_sleep()
        await self._shared.clock.sleep(seconds, interruptible=interruptible)

    async def admit_step(self) -> None:
        """As a worker's host: its lease must be fresh."""
        if self._lease_guard is not None:
            await self._lease_guard()

    async def call_step(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        label: str,
    ) -> Any:
        """The step's mock if it has one, else its code."""
        mock = self._shared.mocks.find(fn, label)
        self._shared.calls_in_flight += 1
        try:
            if mock is not None:
                return await mock(args, kwargs)
            return await call(fn, args, kwargs, timeout)
        finally:
            self._shared.calls_in_flight -= 1
