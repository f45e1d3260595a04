"""What the testing kit costs: the determinism guard, and a WorkflowEnvironment's figures.

    python -m benchmarks.testing_kit [--runs 7] [--skip-environment]

- Guard: CPU time of workflows run on the engine against an in-memory journal (the unit
  tests' harness, no database), with the guard off (a worker without ``--strict``: the plain
  workflow loop, nothing added) and on (``--strict``, every WorkflowEnvironment); medians.
  Two shapes: 10 steps (the engine's own work dominates), and code that computes between
  its effects (each call of workflow code goes through the guard's profile function).
- Environment (needs ``DURABLE_TEST_DATABASE_URL`` or the embedded server): the first
  environment of a process (migrates the template), the next ones (a copy of it), and the
  wall time of a workflow that sleeps a day in 24 hourly timers, with time skipping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import uvloop
from tests.unit.harness import ListJournal, run

import durable
from benchmarks.workflows import many_steps
from durable.replay.journal import Writes

HOUR = 3600.0


class FreeJournal(ListJournal):
    """Writes that only yield to the event loop."""

    async def write(self, writes: Writes) -> None:
        self.round_trips += 1
        await asyncio.sleep(0)


@durable.workflow
async def computes(ctx: durable.Context, rounds: int) -> int:
    """Python work between effects: what the guard's profile function sees most of."""
    total = 0
    for i in range(rounds):
        document = json.dumps({"i": i, "items": list(range(20))})
        total += len(json.loads(document)["items"]) + sum(sorted(range(50), reverse=True))
        if i % 50 == 0:
            ctx.now()
    return total


@durable.workflow
async def sleeps_a_day(ctx: durable.Context) -> float:
    """24 hourly timers; how much virtual time passed."""
    started = ctx.now()
    for _ in range(24):
        await ctx.sleep(HOUR)
    return (ctx.now() - started).total_seconds()


async def _cpu(strict: bool, runs: int, shape: str) -> float:
    samples = []
    for _ in range(runs):
        began = time.process_time()
        if shape == "steps":
            await asyncio.gather(
                *(run(many_steps, FreeJournal(), 10, strict=strict) for _ in range(200))
            )
        else:
            await asyncio.gather(
                *(run(computes, FreeJournal(), 500, strict=strict) for _ in range(20))
            )
        samples.append(time.process_time() - began)
    return statistics.median(samples)


async def guard(runs: int) -> None:
    print("determinism guard, CPU s per batch (median of", runs, "runs):")
    for shape, what in (("steps", "200 workflows x 10 steps"), ("compute", "20 x 500 rounds")):
        off = await _cpu(False, runs, shape)
        on = await _cpu(True, runs, shape)
        print(f"  {what:<26} off {off:.3f}  on {on:.3f}  on/off {on / off:.2f}x")


async def environment(runs: int) -> None:
    from durable.testing import WorkflowEnvironment

    began = time.perf_counter()
    async with WorkflowEnvironment(time_skipping=True) as env:
        first = time.perf_counter() - began
        began = time.perf_counter()
        task = await env.launch(sleeps_a_day)
        virtual = await env.result(task, timeout=60)
        day = time.perf_counter() - began
    starts = []
    for _ in range(runs):
        began = time.perf_counter()
        async with WorkflowEnvironment():
            starts.append(time.perf_counter() - began)
    print("WorkflowEnvironment:")
    print(f"  first start (migrates the template)  {first * 1000:.0f} ms")
    print(f"  next starts, median of {runs}           {statistics.median(starts) * 1000:.0f} ms")
    print(f"  a day of sleep (24 timers), wall     {day * 1000:.0f} ms ({virtual:.0f} s virtual)")


async def main(runs: int, with_environment: bool) -> None:
    await guard(runs)
    if with_environment:
        await environment(runs)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.testing_kit")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--skip-environment", action="store_true")
    options = parser.parse_args()
    uvloop.run(main(options.runs, not options.skip_environment))


if __name__ == "__main__":
    cli()
