"""Workflows that misbehave in every way a worker must survive (SPEC 5, 7.9)."""

from __future__ import annotations

import asyncio

import durable

POISON = "tests.acceptance.workflows_poison"

# The workflows that fail, and the error type each must fail with.
FAILS = [
    ("exits", "SystemExit"),
    ("interrupts", "KeyboardInterrupt"),
    ("fatal", "Fatal"),
    ("cancels_itself", "CancelledError"),
    ("unprintable", "Unprintable"),
    ("nul_result", "SerializationError"),
]


class Fatal(BaseException):
    """Not an Exception: user code that raises it must still only fail its task."""


class Unprintable(Exception):
    """An exception whose message cannot even be computed."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


@durable.workflow
async def exits(ctx: durable.Context) -> None:
    """Raises SystemExit from workflow code."""
    raise SystemExit(3)


@durable.workflow
async def interrupts(ctx: durable.Context) -> None:
    """Raises KeyboardInterrupt after an effect (a delivery, not the first burst)."""
    await ctx.sleep(0)
    raise KeyboardInterrupt


@durable.workflow
async def fatal(ctx: durable.Context) -> None:
    """Raises a BaseException subclass of its own."""
    raise Fatal("not an Exception")


@durable.workflow
async def cancels_itself(ctx: durable.Context) -> None:
    """Raises asyncio.CancelledError although nobody cancelled the task."""
    raise asyncio.CancelledError("my own")


@durable.workflow
async def unprintable(ctx: durable.Context) -> None:
    """Raises an exception whose __str__ raises."""
    raise Unprintable


@durable.workflow
async def nul_result(ctx: durable.Context) -> str:
    """Returns a string Postgres cannot store."""
    return "a\x00b"


@durable.workflow
async def nul_line(ctx: durable.Context) -> str:
    """Prints a NUL and a lone surrogate: the lines are stored escaped; the task completes."""
    print("before\x00after")
    print("lone \ud800 surrogate")
    return "printed"


def surrogate() -> str:
    """A step whose result holds a lone surrogate."""
    return "bad \udc80"


@durable.workflow
async def surrogate_step(ctx: durable.Context) -> str:
    """A step result Postgres cannot store: the step fails, the workflow sees StepFailed."""
    try:
        await ctx.step(surrogate, name="surrogate")
    except durable.StepFailed as failure:
        return f"step failed: {failure.error_type}"
    return "stored?"
