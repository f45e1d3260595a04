"""Workflows the acceptance tests launch in real worker processes.

Steps write to a ledger file so that a test can count how often each step's code really ran.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import durable


def append(ledger: str, entry: str) -> str:
    """Append one line to the ledger: the externally visible effect of a step."""
    with open(ledger, "a", encoding="utf-8") as handle:
        handle.write(entry + "\n")
    return entry


def wait_for_file(path: str, limit: float = 60.0) -> bool:
    """Block until ``path`` exists (the test opens this gate after killing a worker)."""
    deadline = time.monotonic() + limit
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return True


@durable.workflow
async def crash_in_the_middle(ctx: durable.Context, ledger: str, gate: str) -> str:
    """Record a step, then block on a gate while the test kills the worker."""
    print("before step one")
    await ctx.step(append, ledger, "one", name="one")
    print("after step one")
    await ctx.step(wait_for_file, gate, name="gate")
    print("after the gate")
    await ctx.step(append, ledger, "two", name="two")
    return "done"


@durable.workflow
async def fails(ctx: durable.Context) -> None:
    """Ends failed with a ValueError."""
    print("about to fail")
    raise ValueError("this workflow always fails")


@durable.workflow
async def returns_args(ctx: durable.Context, *args: object, **kwargs: object) -> object:
    """Echoes its arguments."""
    return {"args": list(args), "kwargs": kwargs}


@durable.workflow
async def waits_for_gate(ctx: durable.Context, gate: str) -> str:
    """Blocks in a step until the gate file exists."""
    print("waiting")
    await ctx.step(wait_for_file, gate, name="gate")
    return "opened"


def not_a_workflow(ctx: object) -> None:
    """A plain function: the worker must refuse to run it."""
    raise AssertionError("a plain function was run as a workflow")


@durable.workflow
async def sleeper(ctx: durable.Context, seconds: float) -> str:
    """One durable timer between two prints."""
    print("going to sleep")
    await ctx.sleep(seconds)
    print("woke up")
    return "rested"


@durable.workflow
async def step_then_sleep(ctx: durable.Context, ledger: str, seconds: float) -> str:
    """A recorded step, then a timer long enough to suspend."""
    await ctx.step(append, ledger, "step", name="step")
    await ctx.sleep(seconds)
    return "done"


@durable.workflow
async def kills_its_worker(ctx: durable.Context) -> None:
    """A poison task: its step kills the worker process running it, every time."""
    import os
    import signal

    await ctx.step(os.kill, os.getpid(), signal.SIGKILL, name="die")


async def insert_row(conn: Any, task_id: int, amount: int) -> int:
    """Inside the durable transaction: one row per task (no unique key: duplicates would show)."""
    await conn.execute("INSERT INTO tx_rows (task_id, amount) VALUES ($1, $2)", task_id, amount)
    total = await conn.fetchval("SELECT sum(amount) FROM tx_rows WHERE task_id = $1", task_id)
    return int(total)


@durable.workflow
async def exactly_once(ctx: durable.Context, amount: int) -> int:
    """A transaction between a timer and a step, so that kills land on every side of it."""
    await ctx.sleep(ctx.random() / 5)
    total = await ctx.transaction(insert_row, ctx.task_id, amount)
    await ctx.step(time.sleep, ctx.random() / 10, name="after")
    return int(total)


@durable.workflow
async def awaits_promise(ctx: durable.Context, promise_id: str) -> object:
    """Waits for a durable promise and returns its value."""
    print(f"waiting for {promise_id}")
    value = await ctx.promise(promise_id)
    print(f"got {value!r}")
    return value


@durable.workflow
async def promise_with_timeout(ctx: durable.Context, promise_id: str, timeout: float) -> str:
    """A promise wait that gives up."""
    try:
        return str(await ctx.promise(promise_id, timeout=timeout))
    except durable.Timeout:
        return "timed out"


@durable.workflow
async def resolves_promise(ctx: durable.Context, promise_id: str, value: object) -> object:
    """Completes a promise from inside a workflow; returns the winner."""
    return await ctx.resolve(promise_id, value)


@durable.workflow
async def reads_mailbox(ctx: durable.Context, count: int) -> list[object]:
    """Receives ``count`` notifications, in order."""
    received = []
    for _ in range(count):
        note = await ctx.notification()
        assert note is not None
        received.append([note.event, note.data])
    return received


@durable.workflow
async def mailbox_timeout(ctx: durable.Context, timeout: float = 0.3) -> object:
    """A notification wait that gives up."""
    note = await ctx.notification(timeout=timeout)
    return None if note is None else note.event


@durable.workflow(timeout=0.5)
async def too_slow(ctx: durable.Context) -> str:
    """Cancelled by its workflow timeout while suspended on a long timer."""
    print("starting")
    await ctx.sleep(30)
    return "finished"


@durable.workflow
async def square(ctx: durable.Context, n: int) -> int:
    """A child: returns n * n (a step, so it is recorded)."""
    return int(await ctx.step(lambda: n * n, name="square"))


@durable.workflow
async def fan_out(ctx: durable.Context, count: int) -> int:
    """Starts ``count`` children at once and sums their results."""
    handles = await asyncio.gather(*(ctx.start(square, i) for i in range(count)))
    results = await asyncio.gather(*(h.result() for h in handles))
    print(f"{count} children done")
    return sum(results)


@durable.workflow
async def child_fails(ctx: durable.Context) -> str:
    """A child that fails; the parent sees durable.TaskFailed with the child's error."""
    try:
        await ctx.call(fails)
    except durable.TaskFailed as failure:
        return f"{failure.error_type}: {failure.error_message}"
    return "no failure"


@durable.workflow
async def waits_forever(ctx: durable.Context) -> None:
    """A child that waits on a promise nobody resolves."""
    await ctx.promise(f"never-{ctx.task_id}")


@durable.workflow
async def parent_of_waiters(ctx: durable.Context, ledger: str) -> None:
    """Starts two waiting children and one detached one, then waits; cleans up on cancel."""
    await ctx.start(waits_forever)
    await ctx.start(waits_forever)
    await ctx.start(waits_forever, detached=True)
    print("children started")
    try:
        await ctx.sleep(3600)
    except durable.Cancelled:
        async with ctx.cleanup():
            await ctx.step(append, ledger, "cleanup", name="cleanup")
        raise


@durable.workflow
async def countdown(ctx: durable.Context, n: int, total: int = 0) -> int:
    """Continues as new until n reaches 0; each generation has a fresh event log."""
    print(f"generation n={n}")
    value = int(await ctx.step(lambda: n, name="value"))
    if n > 0:
        raise durable.ContinueAsNew(n - 1, total=total + value)
    return total


@durable.workflow
async def cleans_up_slowly(
    ctx: durable.Context, ledger: str, gate: str, seconds: float = 3600
) -> str:
    """Waits (an hour); on cancellation releases two things, blocking on a gate in between."""
    print("waiting")
    try:
        await ctx.sleep(seconds)
    except durable.Cancelled:
        async with ctx.cleanup():
            await ctx.step(append, ledger, "release one", name="release one")
            print("released one")
            await ctx.step(wait_for_file, gate, name="gate")
            await ctx.step(append, ledger, "release two", name="release two")
            print("released two")
        raise
    print("woke up")
    return "slept"


@durable.workflow(timeout=2)
async def times_out_then_cleans_up(ctx: durable.Context, ledger: str, gate: str) -> str:
    """Cancelled by its timeout while sleeping; its cleanup blocks on a gate."""
    print("waiting")
    try:
        await ctx.sleep(3600)
    except durable.Cancelled:
        async with ctx.cleanup():
            await ctx.step(append, ledger, "cleanup", name="cleanup")
            print("cleaning")
            await ctx.step(wait_for_file, gate, name="gate")
            print("cleaned")
        raise
    return "slept"


@durable.workflow
async def undoes_its_first_step(ctx: durable.Context, ledger: str, gate: str) -> str:
    """A first step that blocks on a gate; cancelled, it undoes it."""
    print("start")
    try:
        await ctx.step(wait_for_file, gate, name="work")
    except durable.Cancelled:
        async with ctx.cleanup():
            await ctx.step(append, ledger, "undo", name="undo")
            print("undone")
        raise
    return "worked"


@durable.workflow
async def parent_of_sleepers(ctx: durable.Context) -> None:
    """Two children that sleep for an hour; the parent waits for them."""
    first = await ctx.start(sleeper, 3600)
    second = await ctx.start(sleeper, 3600)
    print("children started")
    await first.result()
    await second.result()


@durable.workflow
async def four_steps(ctx: durable.Context, ledger: str) -> dict[str, object]:
    """A draw, then four steps that each append to the ledger and print a line."""
    token = str(ctx.uuid4())
    done = []
    for name in ("one", "two", "three", "four"):
        done.append(await ctx.step(append, ledger, name, name=name))
        print(f"did {name}")
    return {"token": token, "done": done}
