"""Cancellation inside the engine: where it lands, and that a replay lands it there again."""

from __future__ import annotations

import asyncio

import pytest

import durable
from durable.replay.engine import Engine
from durable.replay.journal import Recorded
from tests.unit.harness import ListJournal, run


def cancel_soon(delay: float = 0.02):  # type: ignore[no-untyped-def]
    def schedule(engine: Engine) -> None:
        asyncio.get_running_loop().call_later(delay, engine.request_cancel)

    return schedule


async def test_cancellation_lands_at_the_await_and_cleanup_runs_once() -> None:
    calls: list[str] = []

    async def slow() -> str:
        calls.append("slow")
        await asyncio.sleep(5)
        return "never"

    def release(what: str) -> str:
        calls.append(f"release {what}")
        return what

    async def workflow(ctx: durable.Context) -> str:
        first = await ctx.step(release, "nothing yet", name="before")
        try:
            await asyncio.gather(ctx.step(slow, name="slow"), ctx.sleep(10))
        except durable.Cancelled:
            async with ctx.cleanup():
                await ctx.step(release, first, name="cleanup")
            raise
        return "done"

    journal = ListJournal()
    with pytest.raises(asyncio.CancelledError):
        await run(workflow, journal, on_start=cancel_soon())
    assert calls == ["release nothing yet", "slow", "release nothing yet"]
    kinds = [(e.kind, e.label) for e in journal.history()]
    assert ("cancel", "cancel") in kinds
    # The replay (a crash after the cleanup) lands the cancellation at the same point and
    # runs nothing again, though no cancellation is requested now.
    calls.clear()
    with pytest.raises(asyncio.CancelledError):
        await run(workflow, journal)
    assert calls == []


async def test_a_cancellation_requested_before_a_replay_lands_on_new_ground() -> None:
    calls: list[str] = []

    def note(what: str) -> str:
        calls.append(what)
        return what

    async def workflow(ctx: durable.Context) -> list[str]:
        seen = [await ctx.step(note, "one", name="one")]
        try:
            seen.append(await ctx.step(note, "two", name="two"))
            await ctx.sleep(10)
        except durable.Cancelled:
            async with ctx.cleanup():
                seen.append(await ctx.step(note, "cleanup", name="cleanup"))
            return seen
        return seen

    # What a run that was suspended in its sleep left behind.
    journal = ListJournal()
    ok = {"status": "ok", "attempts": 1}
    journal.events[0] = Recorded(0, "step", "one", {**ok, "value": "one", "delivered": 0})
    journal.events[1] = Recorded(1, "step", "two", {**ok, "value": "two", "delivered": 1})
    journal.events[2] = Recorded(2, "sleep", "sleep", {"until": "2999-01-01T00:00:00+00:00"})
    # Cancelled while suspended: the replay hands back one and two, then the cancel lands in
    # the sleep, where the workflow really is.
    result = await run(workflow, journal, cancel_requested=True)
    assert result == ["one", "two", "cleanup"]
    assert calls == ["cleanup"]
    marker = journal.events[3]
    assert (marker.kind, marker.payload) == ("cancel", {"delivered": 2})


async def test_effects_after_a_caught_cancellation_outside_cleanup_are_refused() -> None:
    async def workflow(ctx: durable.Context) -> str:
        try:
            await ctx.sleep(10)
        except durable.Cancelled:
            pass
        try:
            await ctx.step(lambda: "x", name="after")
        except durable.Cancelled:
            return "refused"
        return "ran"

    journal = ListJournal()
    assert await run(workflow, journal, on_start=cancel_soon()) == "refused"
