"""SPEC 7.5: durable promises and notifications, across processes, with no lost wake-ups."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

import durable
from tests.helpers.processes import WorkerProcess, run_cli
from tests.helpers.waiting import wait_for_state

WORKFLOWS = "tests.acceptance.workflows"


async def test_a_promise_awaited_in_a_workflow_is_resolved_from_the_shell(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(f"{WORKFLOWS}:awaits_promise", args=["approval-1"])
        await wait_for_state(client, task.id, "suspended")
        assert (await client.get(task.id)).worker_id is None
        waiter = asyncio.ensure_future(client.wait_promise("approval-1", timeout=30))
        resolved = await run_cli(db_url, "promise", "resolve", "approval-1", '{"ok": true}')
        assert resolved.code == 0, resolved.stderr
        assert await client.result(task.id, timeout=30) == {"ok": True}
        assert await waiter == {"ok": True}
        lines = [line async for line in client.tail(task.id)]
        assert lines == ["waiting for approval-1", "got {'ok': True}"]
        peeked = await run_cli(db_url, "promise", "peek", "approval-1")
        assert peeked.code == 0 and "resolved" in peeked.stdout
        awaited = await run_cli(db_url, "promise", "await", "approval-1", "--timeout", "5")
        assert (awaited.code, awaited.stdout.strip()) == (0, '{"ok":true}')


async def test_a_promise_is_completed_at_most_once(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    async with durable.Client(db_url) as client:
        assert await client.resolve("p", 1) == 1
        assert await client.resolve("p", 2) == 1  # the winner comes back to every completer
        assert await client.reject("p", "too late") == 1
        task = await client.launch(f"{WORKFLOWS}:resolves_promise", args=["p", 3])
        assert await client.result(task.id, timeout=30) == 1
        assert await client.reject("q", "no") is None
        with pytest.raises(durable.PromiseRejected, match="no"):
            await client.resolve("q", 1)
        with pytest.raises(durable.PromiseRejected, match="no"):
            await client.wait_promise("q", timeout=5)
        assert await client.peek("never") == durable.PromiseState("pending")
        with pytest.raises(durable.Timeout):
            await client.wait_promise("never", timeout=0.2)
        rejected = await run_cli(db_url, "promise", "await", "q", "--timeout", "5")
        assert rejected.code == 1
        timed_out = await run_cli(db_url, "promise", "await", "never", "--timeout", "0.2")
        assert timed_out.code == 124


async def test_a_promise_timeout_is_deterministic(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(f"{WORKFLOWS}:promise_with_timeout", args=["late", 0.5])
        assert await client.result(task.id, timeout=30) == "timed out"
        await client.resolve("late", "now it is too late")
        kinds = [(e.kind, e.payload["status"]) for e in await client.events(task.id)]
        assert kinds == [("promise", "timeout")]


async def test_notifications_are_kept_and_delivered_in_order(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    async with durable.Client(db_url) as client:
        task = await client.launch(f"{WORKFLOWS}:reads_mailbox", args=[3])
        await client.notify(task.id, "first", {"n": 1})  # before any worker runs the task
        await workers().start()
        await wait_for_state(client, task.id, "suspended")
        sent = await run_cli(db_url, "notify", str(task.id), "second", "[2]")
        assert sent.code == 0, sent.stderr
        await client.notify(task.id, "third")
        assert await client.result(task.id, timeout=30) == [
            ["first", {"n": 1}], ["second", [2]], ["third", None],
        ]  # fmt: skip
        finished = await run_cli(db_url, "notify", str(task.id), "late")
        assert finished.code == 1 and "finished" in finished.stderr
        unknown = await run_cli(db_url, "notify", "999999", "x")
        assert unknown.code == 2
        quiet = await client.launch(f"{WORKFLOWS}:mailbox_timeout")
        assert await client.result(quiet.id, timeout=30) is None


async def test_no_wake_up_is_lost_when_completions_race_suspensions(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    # Low concurrency: tasks are claimed, replayed and suspended while their promises and
    # notifications are completed at random moments around them.
    await workers("--concurrency", "2").start()
    rng = random.Random(7)
    async with durable.Client(db_url) as client:
        promised = [
            (await client.launch(f"{WORKFLOWS}:awaits_promise", args=[f"race-{i}"])).id
            for i in range(30)
        ]
        mailboxes = [
            (await client.launch(f"{WORKFLOWS}:reads_mailbox", args=[1])).id for _ in range(30)
        ]

        async def complete(i: int) -> None:
            await asyncio.sleep(rng.uniform(0, 0.5))  # the race schedule, not a sync point
            await client.resolve(f"race-{i}", i)
            await client.notify(mailboxes[i], "go", i)

        await asyncio.gather(*(complete(i) for i in range(30)))
        results = await asyncio.gather(*(client.result(t, timeout=60) for t in promised))
        notes = await asyncio.gather(*(client.result(t, timeout=60) for t in mailboxes))
    assert results == list(range(30))
    assert notes == [[["go", i]] for i in range(30)]
