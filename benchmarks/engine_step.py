"""The replay engine's own CPU cost per step, without a database.

    python -m benchmarks.engine_step [--workflows 500] [--steps 10]

Runs `benchmarks.workflows.many_steps` concurrently against an in-memory journal whose writes
cost nothing but a turn of the event loop (the unit tests' harness), on uvloop, and prints the
process CPU time per step: what durable's Python adds to a step before asyncpg and Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop
from tests.unit.harness import ListJournal, run

from benchmarks.workflows import many_steps
from durable.replay.journal import Writes


class FreeJournal(ListJournal):
    """Writes that only yield to the event loop."""

    async def write(self, writes: Writes) -> None:
        self.round_trips += 1
        await asyncio.sleep(0)


async def measure(workflows: int, steps: int) -> float:
    """CPU seconds per step over ``workflows`` concurrent runs of ``steps`` steps."""
    began = time.process_time()
    await asyncio.gather(*(run(many_steps, FreeJournal(), steps) for _ in range(workflows)))
    return (time.process_time() - began) / (workflows * steps)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine_step")
    parser.add_argument("--workflows", type=int, default=500)
    parser.add_argument("--steps", type=int, default=10)
    options = parser.parse_args()
    per_step = uvloop.run(measure(options.workflows, options.steps))
    print(
        f"engine: {per_step * 1e6:.1f} us of CPU per step ({options.workflows} x {options.steps})"
    )


if __name__ == "__main__":
    main()
