"""Workflows for the effects chaos test (`test_chaos_effects`): every effect but plain steps.

Child tasks, durable promises (awaited, and resolved from workflows), notifications,
exactly-once transactions and cancellation with cleanup. Each workflow also runs a few steps
that write to the ``ledger`` table of `chaos_workflows` (over connections of their own, stamped
with ``clock_timestamp()``), so that the test can compare when a step's code ran with when its
outcome was recorded (SPEC 7.1), and prints lines whose log the test checks (SPEC 7.3).

Durable sleeps of a fraction of a second between the effects keep the tasks in flight while
the test kills workers: a kill lands on a run in memory, a suspended task or a step under way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import durable
from tests.acceptance.chaos_workflows import LEDGER_DDL, touch

__all__ = ["LEDGER_DDL", "TX_DDL"]

# The table the transactions write (in the durable database, in the transaction that records
# the step): no unique key, so a second commit of the same transaction would show.
TX_DDL = "CREATE TABLE tx_rows (task_id bigint NOT NULL, amount int NOT NULL)"


# -- child tasks -----------------------------------------------------------------------------


@durable.workflow
async def child(ctx: durable.Context, ledger_url: str, n: int, fail: bool, pause: float) -> int:
    """A step, a short timer, then ``n * n``, or a ValueError when ``fail``."""
    stamp = ctx.now().isoformat()
    print(f"child {n} start")
    await ctx.step(touch, ledger_url, ctx.task_id, "c0", stamp, n, name="c0")
    await ctx.sleep(pause)
    if fail:
        raise ValueError(f"child {n} fails")
    print(f"child {n} done")
    return n * n


async def _outcome(result: Any) -> dict[str, Any]:
    """A child's result, or its failure as the parent saw it (durable.TaskFailed)."""
    try:
        return {"ok": await result}
    except durable.TaskFailed as failure:
        return {"failed": f"{failure.error_type}: {failure.error_message}"}


@durable.workflow
async def family(
    ctx: durable.Context, ledger_url: str, gathered: list[list[Any]], called: list[Any]
) -> dict[str, Any]:
    """Starts the ``gathered`` children at once (each ``[n, fail, pause]``) and awaits them all
    at once, then runs the ``called`` one with ``ctx.call``; failures are caught and returned.
    """
    stamp = ctx.now().isoformat()
    print("family start")
    await ctx.step(touch, ledger_url, ctx.task_id, "f0", stamp, 0, name="f0")
    handles = await asyncio.gather(
        *(
            ctx.start(child, ledger_url, n, fail, pause, name=f"child {n}")
            for n, fail, pause in gathered
        )
    )
    # h.result() numbers its effect when called: in issue order, whatever finishes first.
    outcomes = await asyncio.gather(*(_outcome(h.result()) for h in handles))
    print("gathered done")
    n, fail, pause = called
    single = await _outcome(ctx.call(child, ledger_url, n, fail, pause, name=f"child {n}"))
    print("called done")
    await ctx.step(touch, ledger_url, ctx.task_id, "f1", stamp, 1, name="f1")
    return {"gathered": outcomes, "called": single}


def child_result(n: int, fail: bool) -> dict[str, Any]:
    """How a parent records the outcome of child ``n``."""
    if fail:
        return {"failed": f"ValueError: child {n} fails"}
    return {"ok": n * n}


def child_lines(n: int, fail: bool) -> list[str]:
    """The log of child ``n``."""
    return [f"child {n} start"] if fail else [f"child {n} start", f"child {n} done"]


FAMILY_LINES = ["family start", "gathered done", "called done"]
FAMILY_STEPS = ["f0", "f1"]
CHILD_STEPS = ["c0"]
CHILD_EVENTS = [("now", "now"), ("step", "c0"), ("sleep", "sleep")]
_CHILD = f"{__name__}:child"


def family_events(gathered: list[int], called: int) -> list[tuple[str, str]]:
    """The events of a complete `family` whose children have these ids, in launch order."""
    return [
        ("now", "now"),
        ("step", "f0"),
        *(("child", _CHILD) for _ in gathered),
        *(("child_result", str(task_id)) for task_id in gathered),
        ("child", _CHILD),
        ("child_result", str(called)),
        ("step", "f1"),
    ]


# -- exactly-once transactions ---------------------------------------------------------------


async def insert_row(conn: Any, task_id: int, amount: int) -> int:
    """Inside the durable transaction: one row for this task; returns the task's total."""
    await conn.execute("INSERT INTO tx_rows (task_id, amount) VALUES ($1, $2)", task_id, amount)
    total = await conn.fetchval("SELECT sum(amount) FROM tx_rows WHERE task_id = $1", task_id)
    return int(total)


@durable.workflow
async def transfer(ctx: durable.Context, ledger_url: str, amount: int, pause: float) -> int:
    """A step, a timer, the transaction, a timer, a step; returns what the transaction saw."""
    stamp = ctx.now().isoformat()
    print("transfer start")
    await ctx.step(touch, ledger_url, ctx.task_id, "t0", stamp, 0, name="t0")
    await ctx.sleep(pause)
    total = await ctx.transaction(insert_row, ctx.task_id, amount, name="insert")
    print(f"inserted {total}")
    await ctx.sleep(pause)
    await ctx.step(touch, ledger_url, ctx.task_id, "t1", stamp, 1, name="t1")
    print("transfer done")
    return int(total)


def transfer_lines(amount: int) -> list[str]:
    """The log of a `transfer` task."""
    return ["transfer start", f"inserted {amount}", "transfer done"]


TRANSFER_STEPS = ["t0", "t1"]


def transfer_events() -> list[tuple[str, str]]:
    """The events of a complete `transfer`: the transaction recorded once."""
    return [
        ("now", "now"),
        ("step", "t0"),
        ("sleep", "sleep"),
        ("transaction", "insert"),
        ("sleep", "sleep"),
        ("step", "t1"),
    ]


# -- durable promises ------------------------------------------------------------------------


@durable.workflow
async def awaiter(ctx: durable.Context, ledger_url: str, promise_id: str) -> Any:
    """Waits for a durable promise; returns the value it got."""
    stamp = ctx.now().isoformat()
    await ctx.step(touch, ledger_url, ctx.task_id, "a0", stamp, 0, name="a0")
    print(f"waiting for {promise_id}")
    value = await ctx.promise(promise_id)
    print(f"got {value}")
    await ctx.step(touch, ledger_url, ctx.task_id, "a1", stamp, 1, name="a1")
    return value


def awaiter_lines(promise_id: str, winner: str) -> list[str]:
    """The log of an `awaiter` of a promise that ``winner`` won."""
    return [f"waiting for {promise_id}", f"got {winner}"]


AWAITER_STEPS = ["a0", "a1"]


def awaiter_events(promise_id: str) -> list[tuple[str, str]]:
    """The events of a complete `awaiter`."""
    return [("now", "now"), ("step", "a0"), ("promise", promise_id), ("step", "a1")]


@durable.workflow
async def resolver(
    ctx: durable.Context, ledger_url: str, promise_id: str, value: str, pause: float
) -> Any:
    """After a timer, resolves the promise with ``value``; returns the value that won."""
    stamp = ctx.now().isoformat()
    print(f"resolving {promise_id}")
    await ctx.sleep(pause)
    won = await ctx.resolve(promise_id, value)
    print(f"won {won}")
    await ctx.step(touch, ledger_url, ctx.task_id, "r0", stamp, 0, name="r0")
    return won


def resolver_lines(promise_id: str, winner: str) -> list[str]:
    """The log of a `resolver` of a promise that ``winner`` won."""
    return [f"resolving {promise_id}", f"won {winner}"]


RESOLVER_STEPS = ["r0"]


def resolver_events(promise_id: str) -> list[tuple[str, str]]:
    """The events of a complete `resolver`."""
    return [("now", "now"), ("sleep", "sleep"), ("resolve", promise_id), ("step", "r0")]


# -- notifications ---------------------------------------------------------------------------


@durable.workflow
async def mailbox(ctx: durable.Context, ledger_url: str, count: int) -> list[Any]:
    """Receives ``count`` notifications, a step after every other one; returns them in order."""
    stamp = ctx.now().isoformat()
    print("mailbox open")
    received: list[Any] = []
    for index in range(count):
        note = await ctx.notification()
        if note is None:  # no timeout given: never None
            raise AssertionError("ctx.notification() without a timeout returned None")
        print(f"got {note.event}")
        received.append([note.event, note.data])
        if index % 2 == 0:
            await ctx.step(
                touch, ledger_url, ctx.task_id, f"m{index}", stamp, index, name=f"m{index}"
            )
    return received


def mailbox_lines(events: list[str]) -> list[str]:
    """The log of a `mailbox` that received ``events``."""
    return ["mailbox open", *(f"got {event}" for event in events)]


def mailbox_steps(count: int) -> list[str]:
    """The step labels of a `mailbox` of ``count`` notifications."""
    return [f"m{index}" for index in range(0, count, 2)]


def mailbox_events(count: int) -> list[tuple[str, str]]:
    """The events of a complete `mailbox` of ``count`` notifications."""
    events = [("now", "now")]
    for index in range(count):
        events.append(("notification", "notification"))
        if index % 2 == 0:
            events.append(("step", f"m{index}"))
    return events


# -- cancellation with cleanup ---------------------------------------------------------------


@durable.workflow
async def orphan(ctx: durable.Context) -> None:
    """A child that waits forever on a promise nobody completes: cancelled with its parent."""
    print("orphan waiting")
    await ctx.promise(f"never-{ctx.task_id}")


@durable.workflow
async def slow_touch(ledger_url: str, task_id: int, step: str, stamp: str, pause: float) -> int:
    """A step that writes its ledger row, then takes ``pause`` seconds: kills land inside it."""
    await touch(ledger_url, task_id, step, stamp, 0)
    await asyncio.sleep(pause)  # the step's own work, not workflow code: not recorded
    return 1


@durable.workflow
async def cancellable(ctx: durable.Context, ledger_url: str, mode: str) -> str:
    """Waits until the test cancels it: an hour (``sleep``: suspended), on a promise nobody
    completes (``promise``: suspended), an hour with a child waiting forever (``child``), or in
    short naps that keep it in its worker's memory (``naps``: running). The cleanup runs a slow
    step and prints a line, then the task ends cancelled.
    """
    stamp = ctx.now().isoformat()
    await ctx.step(touch, ledger_url, ctx.task_id, "w0", stamp, 0, name="w0")
    if mode == "child":
        await ctx.start(orphan, name="orphan")
    print("waiting")
    try:
        if mode == "promise":
            await ctx.promise(f"never-{ctx.task_id}")
        elif mode == "naps":
            for _ in range(1000):
                await ctx.sleep(0.25)  # shorter than suspend_after: the run stays in memory
        else:
            await ctx.sleep(3600)
    except durable.Cancelled:
        async with ctx.cleanup():
            await ctx.step(
                slow_touch, ledger_url, ctx.task_id, "cleanup", stamp, 0.3, name="cleanup"
            )
            print("cleaned up")
        raise
    return "never cancelled"


CANCELLABLE_LINES = ["waiting", "cleaned up"]
CANCELLABLE_STEPS = ["w0", "cleanup"]
ORPHAN_LINES = ["orphan waiting"]


def cancellable_events(task_id: int, mode: str) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    """The events of a cancelled `cancellable`, but for the wait(s) it was cancelled in, and
    that wait's event (the last one recorded or not, depending on where the cancellation landed;
    repeated in ``naps`` mode).
    """
    events = [("now", "now"), ("step", "w0")]
    if mode == "child":
        events.append(("child", f"{__name__}:orphan"))
    wait = ("promise", f"never-{task_id}") if mode == "promise" else ("sleep", "sleep")
    return [*events, ("cancel", "cancel"), ("step", "cleanup")], wait
