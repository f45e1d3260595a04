"""Workflows for the server, dashboard and metrics tests."""

from __future__ import annotations

import durable


def check(order: str) -> str:
    """A step: what the workflow records before it waits."""
    return f"checked {order}"


@durable.workflow
async def approval(ctx: durable.Context, order: str) -> object:
    """A step, a line, a wait for promise ``approve-<order>``, a line, the value."""
    await ctx.step(check, order, name="check")
    print(f"waiting for approve-{order}")
    value = await ctx.promise(f"approve-{order}")
    print(f"approved: {value!r}")
    return value


@durable.workflow
async def child(ctx: durable.Context, n: int) -> int:
    """A child task."""
    return n * n


@durable.workflow
async def parent(ctx: durable.Context) -> int:
    """Launches a child and waits for it."""
    return int(await ctx.call(child, 7))


@durable.workflow
async def broken(ctx: durable.Context) -> None:
    """Fails."""
    print("about to fail")
    raise ValueError("broken on purpose")
