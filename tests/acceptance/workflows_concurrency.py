"""Workflows that use asyncio concurrency the way users write fan-out (SPEC 3, 7.8).

Steps finish in an order set by their latencies, not by the order they were issued; the
tests then make the task replay (a suspension, a kill -9) and check that it takes the same
path. Steps append to a ledger so a test can count how often each one's code ran.
"""

from __future__ import annotations

import asyncio
import time

import durable
from tests.acceptance.workflows import append, wait_for_file


def first(ledger: str, i: int, delay: float) -> int:
    """The first step of helper ``i``; later helpers finish first (shorter delays)."""
    time.sleep(delay)
    append(ledger, f"first {i}")
    return i * 10


def second(ledger: str, a: int, gate: str | None) -> int:
    """The second step of a helper; blocks on the gate file when one is given."""
    if gate is not None:
        wait_for_file(gate)
    append(ledger, f"second {a}")
    return a + 1


async def helper(ctx: durable.Context, ledger: str, i: int, n: int, gate: str | None) -> int:
    """Two steps in a row, as users write them inside a gather."""
    a = await ctx.step(first, ledger, i, 0.05 * (n - i), name="first")
    return await ctx.step(second, ledger, a, gate if i == 0 else None, name="second")


@durable.workflow
async def fan_out_helpers(
    ctx: durable.Context, ledger: str, n: int, pause: float, gate: str | None = None
) -> list[int]:
    """Gather helpers, then sleep long enough to be suspended and replayed."""
    results = list(await asyncio.gather(*(helper(ctx, ledger, i, n, gate) for i in range(n))))
    print(f"gathered {results}")
    await ctx.sleep(pause)
    print("woke up")
    return results


@durable.workflow
async def square_slowly(ctx: durable.Context, i: int, delay: float) -> int:
    """A child: its latency decides when its parent hears of it."""
    await ctx.step(time.sleep, delay, name="latency")
    return i * i


@durable.workflow
async def fan_out_calls(ctx: durable.Context, n: int) -> list[int]:
    """``ctx.call`` in a gather: children that end in reverse order of their launch."""
    results = await asyncio.gather(*(ctx.call(square_slowly, i, 0.2 * (n - i)) for i in range(n)))
    return list(results)


def make_mapping() -> dict[str, int]:
    """Keys in an order jsonb would not keep (it sorts shorter keys first)."""
    return {"zebra-long-key": 1, "apple": 2, "mango-mid": 3}


@durable.workflow
async def iterate_mapping(ctx: durable.Context, ledger: str, pause: float) -> list[str]:
    """Iterate a recorded dict, pairing one step per key, across a suspension."""
    mapping = await ctx.step(make_mapping, name="mapping")
    seen = []
    for key in mapping:
        seen.append(await ctx.step(append, ledger, f"{key}={mapping[key]}", name="process"))
        if len(seen) == 1:
            await ctx.sleep(pause)
    return seen


class NotFixedYet(RuntimeError):
    """The step's bug, until the test 'deploys the fix' (creates the flag file)."""


def charge(ledger: str, fixed_flag: str) -> str:
    """Fails until the flag file exists (a bug fixed by a deploy)."""
    append(ledger, "charge attempted")
    try:
        open(fixed_flag).close()
    except FileNotFoundError:
        raise NotFixedYet("the charge step has a bug") from None
    return "charged"


@durable.workflow
async def checkout(ctx: durable.Context, ledger: str, fixed_flag: str) -> list[str]:
    """A step before the failing one; `durable retry` must not run it again."""
    reserved = await ctx.step(append, ledger, "reserve", name="reserve")
    charged = await ctx.step(charge, ledger, fixed_flag, name="charge")
    return [reserved, charged]
