"""A parent with child tasks, and cleanup when it is cancelled (seed: go-workflows).

The parent books a trip: it starts one child per reservation, waits for all of them, then
waits for the customer's confirmation (a durable promise). Cancel it while it waits and it
releases every reservation in a cleanup block; its children are cancelled with it.

    durable-worker &
    durable launch 'trip 7' examples.children_and_cancel:book_trip --arg '"trip-7"'
    durable cancel 7            # prints the state; then `durable tail 7` exits 3
"""

from __future__ import annotations

import asyncio

import durable


@durable.step
def reserve(trip: str, item: str) -> str:
    """Reserve one item (a call to a supplier in real life)."""
    return f"{trip}/{item}"


@durable.step
def release(reservation: str) -> str:
    """Release a reservation (the compensation of `reserve`)."""
    print(f"released {reservation}")
    return reservation


@durable.workflow
async def reservation(ctx: durable.Context, trip: str, item: str) -> str:
    """A child: reserve one item and hold it until the trip is confirmed or cancelled."""
    booked = str(await reserve(trip, item))
    print(f"reserved {booked}")
    return booked


@durable.workflow
async def book_trip(ctx: durable.Context, trip: str) -> list[str]:
    """Reserve flight, hotel and car in child tasks, then wait for the confirmation."""
    children = [await ctx.start(reservation, trip, item) for item in ("flight", "hotel", "car")]
    booked = list(await asyncio.gather(*(child.result() for child in children)))
    print(f"booked {', '.join(booked)}; waiting for confirmation")
    try:
        await ctx.promise(f"confirm-{trip}")
    except durable.Cancelled:
        async with ctx.cleanup():
            for item in booked:
                await release(item)
        raise
    print("confirmed")
    return booked
