"""Workflows for the tests of durable.testing (tests/integration/test_testing_env.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import durable

DAY = 86400.0


class Declined(Exception):
    """The card was declined."""


@durable.step(name="charge")
async def charge(order: str, cents: int) -> dict[str, Any]:
    raise AssertionError("the real charge must not run in these tests")


@durable.step
async def notify_customer(order: str, text: str) -> str:
    return f"{order}: {text}"


@durable.workflow
async def checkout(ctx: durable.Context, order: str, cents: int) -> dict[str, Any]:
    started = ctx.now()
    receipt = await charge(order, cents)
    await ctx.sleep(DAY)
    note = await notify_customer(order, "a day later")
    approval = await ctx.promise(f"approve-{order}")
    waited = (ctx.now() - started).total_seconds()
    return {"receipt": receipt, "note": note, "approval": approval, "waited": waited}


@durable.workflow
async def sleepy(ctx: durable.Context, days: int) -> float:
    started = ctx.now()
    for _ in range(days):
        await ctx.sleep(DAY)
    return (ctx.now() - started).total_seconds()


@durable.workflow
async def racer(ctx: durable.Context) -> list[str]:
    """Concurrent steps and timers: the shape check_replay must replay from every point."""
    order: list[str] = []

    async def leg(name: str, delay: float) -> None:
        await ctx.sleep(delay)
        order.append(await notify_customer(name, "done"))

    await asyncio.gather(leg("a", 30), leg("b", 10), leg("c", 20))
    try:
        async with asyncio.timeout(5):
            await ctx.sleep(60)
    except TimeoutError:
        order.append("timed out")
    order.append(str(ctx.random() < 1.0))
    return order


@durable.workflow
async def approval(ctx: durable.Context, order: str) -> str:
    try:
        return str(await ctx.promise(f"approve-{order}", timeout=DAY))
    except durable.Timeout:
        return "expired"


@durable.workflow
async def retries(ctx: durable.Context) -> Any:
    policy = durable.RetryPolicy(max_attempts=3, initial_interval=3600.0, backoff=2.0)
    try:
        return await ctx.step(charge, "o-r", 5, retry=policy)
    except durable.StepFailed as failure:
        return failure.error_type


# Changed between runs by a test: the workflow takes another path when it is True.
FLAGS = {"changed": False}


@durable.workflow
async def fickle(ctx: durable.Context) -> str:
    await notify_customer("f", "first")
    if FLAGS["changed"]:
        await ctx.sleep(1)
    return await notify_customer("f", "second")


@durable.workflow
async def peeks_at_the_clock(ctx: durable.Context) -> float:
    import time

    return time.time()  # the determinism guard refuses this line


@durable.workflow
async def parent(ctx: durable.Context) -> list[float]:
    """Children that sleep: the parent waits (suspended) on them, they wait on timers."""
    return list(await asyncio.gather(ctx.call(sleepy, 1), ctx.call(sleepy, 2)))
