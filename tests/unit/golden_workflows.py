"""Workflows whose recorded histories are checked in (tests/unit/histories/*.json).

`test_golden_histories.py` replays each history against these functions: a change to the
engine that stops an existing history from replaying fails there. Files named ``*-v0.json``
were recorded by durable before delivery order was recorded (git df7d5fa); the others by
the current engine. Keep these functions as they are: the histories are their record.
"""

from __future__ import annotations

import asyncio
from typing import Any

import durable

CALLS: list[str] = []


def add(a: int, b: int) -> int:
    CALLS.append(f"add {a} {b}")
    return a + b


async def slow_echo(value: str, delay: float) -> str:
    CALLS.append(f"echo {value}")
    await asyncio.sleep(delay)
    return value


def broken(why: str) -> None:
    CALLS.append("broken")
    raise ValueError(why)


def mapping() -> dict[str, int]:
    CALLS.append("mapping")
    return {"zebra-long": 1, "apple": 2}


async def double(connection: Any, x: int) -> int:
    CALLS.append(f"double {x}")
    return x * 2


async def sequential(ctx: durable.Context) -> dict[str, Any]:
    """Every effect kind the list journal supports, one after the other."""
    started = ctx.now().isoformat()
    print("start")
    total = await ctx.step(add, 1, 2, name="add")
    await ctx.sleep(0.01)
    draw = ctx.random()
    try:
        await ctx.step(broken, "on purpose", name="broken")
        failed = ""
    except durable.StepFailed as error:
        failed = error.error_type
    new_path = ctx.patched("v2")
    doubled = await ctx.transaction(double, total)
    keys = list(await ctx.step(mapping, name="mapping"))
    print(f"total={total}")
    return {
        "started": started,
        "total": total,
        "draw": draw,
        "failed": failed,
        "patched": new_path,
        "doubled": doubled,
        "keys": keys,
        "uuid": str(ctx.uuid4()),
    }


async def parallel_singles(ctx: durable.Context) -> list[str]:
    """A gather of single steps (each branch awaits one effect)."""
    values = await asyncio.gather(
        ctx.step(slow_echo, "a", 0.03, name="echo a"),
        ctx.step(slow_echo, "b", 0.0, name="echo b"),
        ctx.step(slow_echo, "c", 0.015, name="echo c"),
    )
    print("gathered")
    return list(values)


async def helpers(ctx: durable.Context) -> list[str]:
    """Helpers awaiting two steps each, finishing in reverse order (delivery order matters)."""

    async def helper(i: int) -> str:
        first = await ctx.step(slow_echo, f"first {i}", 0.02 * (3 - i), name="first")
        return await ctx.step(slow_echo, f"{first} then second", 0.0, name="second")

    return list(await asyncio.gather(*(helper(i) for i in range(3))))


async def timeouts(ctx: durable.Context) -> list[str]:
    """asyncio.timeout around a slow step, and a race that a durable sleep wins."""
    try:
        async with asyncio.timeout(0.02):
            await ctx.step(slow_echo, "too slow", 0.2, name="slow")
        timed = "finished"
    except TimeoutError:
        timed = "timed out"
    racers = [
        asyncio.create_task(ctx.step(slow_echo, "late", 0.2, name="late")),
        asyncio.create_task(ctx.sleep(0.01)),
    ]
    done, pending = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    winner = "sleep" if racers[1] in done else "step"
    return [timed, winner]


WORKFLOWS = {
    "sequential": sequential,
    "parallel_singles": parallel_singles,
    "helpers": helpers,
    "timeouts": timeouts,
}
