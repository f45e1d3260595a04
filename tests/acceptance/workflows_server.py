"""Workflows for the server, dashboard and metrics tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def flaky(marker: str) -> str:
    """Fails on its first attempt (leaves ``marker``), succeeds on the next."""
    path = Path(marker)
    if not path.exists():
        path.touch()
        raise ConnectionError("card network timed out")
    return "charged"


@durable.workflow
async def showcase(ctx: durable.Context, marker: str) -> None:
    """A bit of everything for the dashboard: a step, a retried step, a child, a timer, then a
    log line for each notification it receives, until cancelled."""
    await ctx.step(check, "o-42", name="check")
    await ctx.step(
        flaky,
        marker,
        name="charge",
        retry=durable.RetryPolicy(max_attempts=3, initial_interval=0.2),
    )
    await ctx.call(child, 6)
    await ctx.sleep(0.3)
    print("ready for notifications")
    while True:
        note = await ctx.notification()
        assert note is not None
        print(f"{note.event}: {note.data}")


async def note_order(conn: Any, order: str) -> str:
    """A transaction: runs in the durable database's transaction."""
    return str(await conn.fetchval("SELECT $1::text", order))


@durable.workflow
async def traced_parent(ctx: durable.Context, order: str) -> int:
    """A step, a transaction and a child, for the tracing test."""
    await ctx.step(check, order, name="check")
    await ctx.transaction(note_order, order)
    return int(await ctx.call(child, 3))
