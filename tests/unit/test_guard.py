"""The determinism guard (SPEC 11): workflow code that reaches for the world is refused."""

from __future__ import annotations

import asyncio
import datetime
import random
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import durable
from tests.unit.harness import ListJournal, run

HERE = Path(__file__).resolve()


def _line_of(marker: str) -> int:
    for number, line in enumerate(HERE.read_text().splitlines(), start=1):
        if line.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(marker)


def _time() -> Any:
    return time.time()  # guard:time


def _monotonic() -> Any:
    return time.monotonic()  # guard:monotonic


def _now() -> Any:
    return datetime.datetime.now()  # guard:now


def _utcnow() -> Any:
    return datetime.datetime.utcnow()  # guard:utcnow


def _random() -> Any:
    return random.random()  # guard:random


def _randint() -> Any:
    return random.randint(1, 6)  # guard:randint


def _uuid4() -> Any:
    return uuid.uuid4()  # guard:uuid4


def _open() -> Any:
    with open(__file__) as file:  # guard:open
        return file.read(1)


def _socket() -> Any:
    with socket.socket() as sock:  # guard:socket
        return sock.family


CALLS: dict[str, tuple[Callable[[], Any], str]] = {
    "time": (_time, "time.time()"),
    "monotonic": (_monotonic, "time.monotonic()"),
    "now": (_now, "datetime.now()"),
    "utcnow": (_utcnow, "datetime.utcnow()"),
    "random": (_random, "random.random()"),
    "randint": (_randint, "random.randint()"),
    "uuid4": (_uuid4, "uuid.uuid4()"),
    "open": (_open, "open()"),
    "socket": (_socket, "socket.socket()"),
}


@pytest.mark.parametrize("marker", sorted(CALLS))
async def test_the_guard_names_the_call_and_the_line(marker: str) -> None:
    call, name = CALLS[marker]

    @durable.workflow
    async def flow(ctx: durable.Context) -> Any:
        return call()

    with pytest.raises(durable.DeterminismViolation) as caught:
        await run(flow, ListJournal(), strict=True)
    assert caught.value.call == name
    assert caught.value.where == f"{HERE}:{_line_of('guard:' + marker)}"
    assert f"{name} in workflow code at {HERE}:" in str(caught.value)
    # Off (a worker without --strict): the same code runs.
    await run(flow, ListJournal())


async def test_asyncio_sleep_with_a_delay_is_refused() -> None:
    @durable.workflow
    async def flow(ctx: durable.Context) -> None:
        await asyncio.sleep(0)  # a plain yield is fine
        await asyncio.sleep(5)  # guard:sleep

    with pytest.raises(durable.DeterminismViolation, match=r"asyncio.sleep\(5\)") as caught:
        await run(flow, ListJournal(), strict=True)
    assert caught.value.where.endswith(f":{_line_of('guard:sleep')}")


async def test_the_recorded_ways_and_steps_are_allowed() -> None:
    @durable.step
    def read_clock_and_file() -> float:
        with open(__file__) as file:
            file.read(1)
        return time.time() + random.random()

    @durable.step
    async def async_step() -> str:
        await asyncio.sleep(0.001)
        return str(uuid.uuid4())

    @durable.workflow
    async def flow(ctx: durable.Context) -> list[Any]:
        print("printing is fine")
        ctx.log.info("so is logging at %s", ctx.now())
        await ctx.sleep(0.01)
        async with asyncio.timeout(10):
            value = await read_clock_and_file()
        return [value > 0, len(await async_step()), ctx.random() < 1, str(ctx.uuid4())[:0]]

    journal = ListJournal()
    assert await run(flow, journal, strict=True) == [True, 36, True, ""]
    assert journal.log()[0] == "printing is fine"


def test_the_guard_costs_nothing_when_off() -> None:
    """Off, the engine runs the plain workflow loop: no profile function is ever set."""
    from durable.replay.engine import Engine, RunSpec
    from durable.replay.guard import GuardedWorkflowLoop
    from durable.worker.steps import StepHost

    plain = Engine(RunSpec(1, "t", "m:f"), ListJournal(), StepHost())
    strict = Engine(RunSpec(1, "t", "m:f", strict=True), ListJournal(), StepHost())
    assert type(strict._wloop) is GuardedWorkflowLoop
    assert not isinstance(plain._wloop, GuardedWorkflowLoop)
    assert sys.getprofile() is None
