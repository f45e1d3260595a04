"""SPEC 9: the examples run, through real durable-worker processes and the real CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

import durable
from tests.acceptance.workflows_http import LocalHttpServer
from tests.helpers.processes import REPO_ROOT, WorkerProcess, environment, run_cli
from tests.helpers.waiting import wait_for_state


def launched_id(stderr: str) -> int:
    """The task id `durable launch --tail` prints first on stderr."""
    return int(stderr.strip().splitlines()[0])


async def balances(db_url: str) -> dict[str, int]:
    """The examples' accounts, read straight from the database."""
    connection = await asyncpg.connect(db_url)
    try:
        rows = await connection.fetch("SELECT name, balance FROM examples_accounts")
    finally:
        await connection.close()
    return {row["name"]: row["balance"] for row in rows}


# -- payments ---------------------------------------------------------------------------------


async def test_payments_retries_reminds_sleeps_suspended_and_collects(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    await workers().start()
    kwargs = {"reminder_interval": 2.5, "state_dir": str(tmp_path)}  # suspends: > 2 s away
    async with durable.Client(db_url) as client:
        task = await client.launch(
            "examples.payments:collect_payment", name="collect o-1", args=["o-1", 1999],
            kwargs=kwargs,
        )  # fmt: skip
        tail = asyncio.ensure_future(run_cli(db_url, "tail", str(task.id)))
        suspended = await wait_for_state(client, task.id, "suspended", timeout=15)
        assert suspended.worker_id is None  # the long sleep holds no worker
        receipt = await client.result(task.id, timeout=30)
        tailed = await tail
        events = await client.events(task.id)
        info = await client.get(task.id)
    assert (tailed.code, tailed.stdout.splitlines()) == (0, [
        "order o-1: collecting 19.99",
        "order o-1: charge failed: CardDeclined",
        "order o-1: reminder 1 sent, next attempt in 2.5 s",
        "order o-1: paid by ch_o-1_4",
    ])  # fmt: skip
    assert receipt["status"] == "paid" and receipt["charge_id"] == "ch_o-1_4"
    assert (receipt["cents"], receipt["reminders"]) == (1999, 1)
    charges = [
        (e.payload["status"], e.payload["attempts"]) for e in events if e.label == "charge_card"
    ]
    assert charges == [("error", 3), ("ok", 1)]  # two outages retried, then declined; then paid
    # Resumed by replay after the sleep, yet the provider saw 4 calls and one reminder was sent.
    assert info.attempts == 2
    assert (tmp_path / "o-1.calls").read_text() == "4"
    assert (tmp_path / "outbox.txt").read_text() == "o-1: reminder 1\n"


async def test_payments_gives_up_after_the_last_reminder(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    await workers().start()
    kwargs = {"outages": 0, "declines": 9, "max_reminders": 1, "reminder_interval": 0.1,
              "state_dir": str(tmp_path)}  # fmt: skip
    result = await run_cli(
        db_url, "launch", "--tail", "--arg", '"o-2"', "--arg", "500", "--kwargs",
        json.dumps(kwargs), "collect o-2", "examples.payments:collect_payment",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "order o-2: collecting 5.00",
        "order o-2: charge failed: CardDeclined",
        "order o-2: reminder 1 sent, next attempt in 0.1 s",
        "order o-2: charge failed: CardDeclined",
        "order o-2: uncollectible after 1 reminders",
    ]
    async with durable.Client(db_url) as client:
        receipt = await client.result(launched_id(result.stderr), timeout=5)
    assert receipt == {"order_id": "o-2", "status": "uncollectible", "reminders": 1}
    assert (tmp_path / "o-2.calls").read_text() == "2"


# -- exactly once -----------------------------------------------------------------------------


async def test_a_transfer_moves_money_once_and_an_overdraft_changes_nothing(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    paid = await run_cli(
        db_url, "launch", "--tail", "--arg", '"alice"', "--arg", '"bob"', "--arg", "25",
        "pay bob", "examples.exactly_once:transfer",
    )  # fmt: skip
    assert paid.code == 0, paid.stderr
    assert paid.stdout == "alice -> bob: 25\nbalances: alice 975, bob 1025\n"
    async with durable.Client(db_url) as client:
        assert await client.result(launched_id(paid.stderr)) == {"alice": 975, "bob": 1025}
    overdraft = await run_cli(
        db_url, "launch", "--tail", "--arg", '"alice"', "--arg", '"bob"', "--arg", "5000",
        "too much", "examples.exactly_once:transfer",
    )  # fmt: skip
    assert overdraft.code == 1
    assert "InsufficientFunds" in overdraft.stderr and "alice cannot pay 5000" in overdraft.stderr
    assert await balances(db_url) == {"alice": 975, "bob": 1025}


async def test_installments_are_paid_once_each_across_a_killed_worker(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    first = await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch(
            "examples.exactly_once:installments", args=["alice", "bob", 10, 20],
            kwargs={"every": 0.1},
        )  # fmt: skip
        async with contextlib.aclosing(client.tail(task.id)) as lines:
            async for line in lines:
                if line.startswith("installment 5/20"):
                    break
        first.signal(signal.SIGKILL)
        await first.wait()
        assert not (await client.get(task.id)).state.is_final  # killed in the middle
        await workers().start()
        assert await client.result(task.id, timeout=30) == {"alice": 800, "bob": 1200}
        log = [line async for line in client.tail(task.id)]
        info = await client.get(task.id)
    assert info.attempts == 2  # the second worker finished it, by replay
    assert log == [f"installment {n}/20: alice {1000 - 10 * n}, bob {1000 + 10 * n}"
                   for n in range(1, 21)]  # fmt: skip
    assert await balances(db_url) == {"alice": 800, "bob": 1200}


# -- promises ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def example_main(db_url: str, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m examples.promises ARGS`` with the test database; killed if left running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.promises", *args,
        cwd=REPO_ROOT, env=environment(db_url), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def test_a_promise_awaited_in_one_process_is_resolved_from_a_shell(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    async with example_main(db_url, "o-7") as main, durable.Client(db_url) as client:
        assert main.stdout is not None
        first = (await asyncio.wait_for(main.stdout.readline(), 30)).decode()
        assert first.endswith(": resolve approval-o-7 to go on\n"), first
        task_id = int(first.split()[1].rstrip(":"))
        await wait_for_state(client, task_id, "suspended")
        resolved = await run_cli(
            db_url, "promise", "resolve", "approval-o-7", '{"approved": true, "by": "ana"}'
        )
        assert resolved.code == 0, resolved.stderr
        out, err = await asyncio.wait_for(main.communicate(), 30)
    assert main.returncode == 0, err.decode()
    decision = '{"approved": true, "by": "ana"}'
    assert out.decode().splitlines() == [
        "order o-7: waiting for approval-o-7",
        f"order o-7: approved: {decision}",
        f'result: {{"approved": true, "decision": {decision}, "order_id": "o-7"}}',
    ]


async def test_a_rejection_sent_before_the_workflow_waits_is_kept(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    rejected = await run_cli(db_url, "promise", "reject", "approval-o-8", "too expensive")
    assert rejected.code == 0, rejected.stderr
    await workers().start()
    result = await run_cli(
        db_url, "launch", "--tail", "--arg", '"o-8"', "approve o-8",
        "examples.promises:approve_order",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "order o-8: waiting for approval-o-8",
        "order o-8: rejected: too expensive",
    ]
    async with durable.Client(db_url) as client:
        outcome = await client.result(launched_id(result.stderr))
    assert outcome == {"order_id": "o-8", "approved": False, "reason": "too expensive"}


# -- http -------------------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[LocalHttpServer]:
    """A local HTTP server the workers can reach, counting requests."""
    async with LocalHttpServer() as local:
        yield local


async def test_an_http_call_is_made_once_across_a_suspension(
    db_url: str, workers: Callable[..., WorkerProcess], server: LocalHttpServer
) -> None:
    await workers().start()
    url = f"{server.url}/hello"
    result = await run_cli(
        db_url, "launch", "--tail", "--arg", json.dumps(url), "--arg", "2.5", "fetch",
        "examples.http_call:fetch",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    body = '{"hello": "world", "served": 1}'
    assert result.stdout.splitlines() == [
        f"GET {url} -> 200 (application/json, {len(body)} characters)",
        "after 2.5 s, still 200",
    ]
    async with durable.Client(db_url) as client:
        task_id = launched_id(result.stderr)
        outcome = await client.result(task_id)
        info = await client.get(task_id)
    assert outcome == {
        "status": 200, "content_type": "application/json", "length": len(body), "url": url,
    }  # fmt: skip
    assert info.attempts == 2  # suspended by the pause, then resumed by replay ...
    assert server.hits("/hello") == 1  # ... which did not send the request again
