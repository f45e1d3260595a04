"""Workflows the benchmarks launch (durable's side; `dbos_app` has DBOS's twins)."""

from __future__ import annotations

import asyncio
import time

import durable


async def bench_step(i: int) -> int:
    """The step of every throughput workload: no work, so what is measured is the overhead."""
    return i


@durable.workflow
async def one_step(ctx: durable.Context, i: int) -> int:
    """W1, W3 and W5's children: one step."""
    return await ctx.step(bench_step, i)


@durable.workflow
async def many_steps(ctx: durable.Context, steps: int) -> int:
    """W2: ``steps`` steps one after the other."""
    for k in range(steps):
        await ctx.step(bench_step, k)
    return steps


@durable.workflow
async def step_then_sleep(ctx: durable.Context, seconds: float) -> float:
    """W4: a step, then a durable sleep; returns the wall-clock time it woke up at."""
    await ctx.step(bench_step, 0)
    await ctx.sleep(seconds)
    return time.time()


@durable.workflow
async def fanout(ctx: durable.Context, children: int) -> int:
    """W5: start ``children`` child tasks at once, then await them all."""
    handles = await asyncio.gather(*(ctx.start(one_step, i) for i in range(children)))
    results = await asyncio.gather(*(handle.result() for handle in handles))
    return sum(results)


@durable.workflow
async def sleep_once(ctx: durable.Context, seconds: float) -> float:
    """One durable timer; returns how late it fired, in seconds (measured at wake-up)."""
    deadline = ctx.now().timestamp() + seconds
    await ctx.sleep(seconds)
    return time.time() - deadline
