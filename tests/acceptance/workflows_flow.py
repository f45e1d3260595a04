"""Workflows for the flow-control acceptance tests (tests/acceptance/test_flow_control.py)."""

from __future__ import annotations

import asyncio

import durable
from tests.acceptance.workflows import wait_for_file


async def pause(seconds: float) -> float:
    """Hold the worker's slot for a while (a call to a slow downstream)."""
    await asyncio.sleep(seconds)
    return seconds


@durable.workflow
async def work(ctx: durable.Context, seconds: float) -> float:
    """One step that takes ``seconds``."""
    return await ctx.step(pause, seconds, name="work")


@durable.workflow
async def gated(ctx: durable.Context, gate: str) -> str:
    """A step that waits for a file: the task holds its slot until the test opens the gate."""
    await ctx.step(wait_for_file, gate, name="gate")
    return "done"


@durable.workflow
async def wait_for_go(ctx: durable.Context) -> str:
    """Suspends on the promise go-<task id> (holding no worker) between two steps."""
    await ctx.step(pause, 0.01, name="before")
    await ctx.promise(f"go-{ctx.task_id}")
    await ctx.step(pause, 0.01, name="after")
    return "done"


@durable.workflow
async def echo(ctx: durable.Context, *args: object) -> list[object]:
    """Returns its arguments."""
    return list(args)


@durable.workflow
async def stamp(ctx: durable.Context, scheduled_at: str) -> str:
    """Returns the tick it was launched for."""
    return scheduled_at


@durable.workflow
async def slow_tick(ctx: durable.Context, seconds: float) -> float:
    """A scheduled run that outlasts the interval between ticks."""
    return await ctx.step(pause, seconds, name="work")
