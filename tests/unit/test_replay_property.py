"""Property: any asyncio shape replays from every prefix of its history (SPEC 3, 7.8).

Hypothesis generates workflow shapes (nested gathers, task groups, create_task, races with
FIRST_COMPLETED, as_completed, asyncio.timeout around effects, durable sleeps, steps with
random latencies and failures). Each shape runs to completion against a list journal; then,
for every prefix of its writes (what a crash at that moment would leave), the workflow runs
again on that prefix and must:

- never raise NonDeterminismError;
- never run a step whose outcome the prefix had recorded (SPEC 7.1);
- given the whole history, return exactly the first run's result without running anything.

``DURABLE_PROPERTY_EXAMPLES`` raises the number of shapes for a longer run on demand.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable
from tests.unit.harness import ListJournal, run

EXAMPLES = int(os.environ.get("DURABLE_PROPERTY_EXAMPLES", "200"))


@dataclass
class Step:
    delay_ms: int
    fails: bool
    name: str = ""


@dataclass
class Sleep:
    ms: int


@dataclass
class Combinator:
    kind: str  # seq, gather, group, tasks, race, as_completed
    children: list[Any] = field(default_factory=list)


@dataclass
class WithTimeout:
    ms: int
    child: Any


leaves = st.one_of(
    st.builds(Step, st.integers(0, 6), st.booleans()),
    st.builds(Sleep, st.integers(0, 5)),
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(
            Combinator,
            st.sampled_from(["seq", "gather", "group", "tasks", "race", "as_completed"]),
            st.lists(children, min_size=1, max_size=3),
        ),
        st.builds(WithTimeout, st.integers(1, 8), children),
    )


shapes = st.recursive(leaves, _extend, max_leaves=8)


def _name_steps(node: Any, counter: list[int]) -> None:
    if isinstance(node, Step):
        node.name = f"s{counter[0]}"
        counter[0] += 1
    elif isinstance(node, Combinator):
        for child in node.children:
            _name_steps(child, counter)
    elif isinstance(node, WithTimeout):
        _name_steps(node.child, counter)


class Calls:
    """Which steps' code ran, by label."""

    def __init__(self) -> None:
        self.ran: Counter[str] = Counter()


async def _step_code(calls: Calls, name: str, delay_ms: int, fails: bool) -> str:
    calls.ran[name] += 1
    await asyncio.sleep(delay_ms / 1000)
    if fails:
        raise ValueError(f"{name} failed")
    return name


async def execute(ctx: durable.Context, calls: Calls, node: Any) -> Any:
    """Run one node of a shape; every result is JSON (lists, strings)."""
    if isinstance(node, Step):
        try:
            return await ctx.step(
                _step_code, calls, node.name, node.delay_ms, node.fails, name=node.name
            )
        except durable.StepFailed:
            return f"{node.name}!"
    if isinstance(node, Sleep):
        await ctx.sleep(node.ms / 1000)
        return "z"
    if isinstance(node, WithTimeout):
        try:
            async with asyncio.timeout(node.ms / 1000):
                return await execute(ctx, calls, node.child)
        except TimeoutError:
            return "timeout"
    assert isinstance(node, Combinator)
    children = node.children
    if node.kind == "seq":
        return [await execute(ctx, calls, child) for child in children]
    if node.kind == "gather":
        return list(await asyncio.gather(*(execute(ctx, calls, c) for c in children)))
    if node.kind == "group":
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(execute(ctx, calls, c)) for c in children]
        return [task.result() for task in tasks]
    if node.kind == "tasks":
        started = [asyncio.ensure_future(execute(ctx, calls, c)) for c in children]
        return [await task for task in started]
    if node.kind == "as_completed":
        pending = [execute(ctx, calls, c) for c in children]
        return [await next_done for next_done in asyncio.as_completed(pending)]
    assert node.kind == "race"
    racers = [asyncio.create_task(execute(ctx, calls, c)) for c in children]
    done, losers = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
    for loser in losers:
        loser.cancel()
    await asyncio.gather(*losers, return_exceptions=True)
    return sorted(str(task.result()) for task in done)


def _recorded_steps(journal: ListJournal) -> set[str]:
    return {
        event.label
        for event in journal.events.values()
        if event.kind == "step"
        and event.payload.get("status") in ("ok", "error")
        and not event.payload.get("retried")
    }


async def _check(shape: Any) -> None:
    calls = Calls()

    async def workflow(ctx: durable.Context) -> Any:
        return await execute(ctx, calls, shape)

    journal = ListJournal()
    first = await run(workflow, journal)
    full = len(journal.batches)
    for count in range(full + 1):
        prefix = journal.prefix(count)
        recorded = _recorded_steps(prefix)
        calls.ran.clear()
        result = await run(workflow, prefix)  # NonDeterminismError would raise here
        again = set(calls.ran) & recorded
        assert not again, f"steps {sorted(again)} ran again after their outcome was recorded"
        if count == full:
            assert result == first
            assert not calls.ran


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(shapes)
def test_every_shape_replays_from_every_prefix(shape: Any) -> None:
    _name_steps(shape, [0])
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(_check(shape), 60))
