"""`durable cancel` waits for the task to end; `durable promise resolve|reject` report the winner.

The workflow below runs in real worker processes, which import it by its reference
``tests.acceptance.test_cli_cancel_promise:sleeps_with_cleanup``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

import durable
from tests.helpers.processes import WorkerProcess, run_cli
from tests.helpers.waiting import wait_for_state

SLEEPER = f"{__name__}:sleeps_with_cleanup"


def record(ledger: str, entry: str) -> str:
    """Append one line to the ledger: the visible effect of the cleanup step."""
    with open(ledger, "a", encoding="utf-8") as handle:
        handle.write(entry + "\n")
    return entry


@durable.workflow
async def sleeps_with_cleanup(ctx: durable.Context, ledger: str) -> str:
    """Suspends on a long timer; when cancelled, records its cleanup in a step."""
    print("sleeping")
    try:
        await ctx.sleep(3600)
    except durable.Cancelled:
        async with ctx.cleanup():
            await ctx.step(record, ledger, "cleanup", name="cleanup")
        raise
    return "woke up"


async def launch_suspended(db_url: str, ledger: Path) -> int:
    """Launch the sleeper and return its id once it is suspended on its timer."""
    async with durable.Client(db_url) as client:
        task = await client.launch(SLEEPER, args=[str(ledger)])
        await wait_for_state(client, task.id, "suspended", timeout=30)
    return task.id


async def test_cancel_waits_for_the_cleanup_and_prints_cancelled(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    await workers().start()
    task_id = await launch_suspended(db_url, ledger)
    result = await run_cli(db_url, "cancel", str(task_id))
    assert (result.code, result.stdout, result.stderr) == (0, "cancelled\n", "")
    assert ledger.read_text().splitlines() == ["cleanup"]  # done before cancel printed
    again = await run_cli(db_url, "cancel", str(task_id))
    assert (again.code, again.stdout) == (0, "cancelled\n")
    assert "already cancelled" in again.stderr


async def test_cancel_without_a_worker_prints_the_state_and_explains(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    worker = await workers().start()
    task_id = await launch_suspended(db_url, ledger)
    worker.signal(signal.SIGTERM)
    assert await worker.wait() == 0
    result = await run_cli(db_url, "cancel", "--wait", "0.5", str(task_id))
    assert result.code == 0, result.stderr
    assert result.stdout == "pending\n"  # woken so that a worker runs its cleanup
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cancellation requested" in lines[0]
    assert "ends cancelled once a worker runs its cleanup" in lines[0]
    assert not ledger.exists()
    await workers().start()  # a worker comes back: the cleanup runs, the task ends cancelled
    async with durable.Client(db_url) as client:
        assert (await client.wait(task_id, timeout=30)).state == "cancelled"
    assert ledger.read_text().splitlines() == ["cleanup"]


async def test_resolve_twice_prints_the_winner(db_url: str) -> None:
    first = await run_cli(db_url, "promise", "resolve", "p", '{"n": 1}')
    assert (first.code, first.stdout, first.stderr) == (0, '{"n":1}\n', "")
    same = await run_cli(db_url, "promise", "resolve", "p", '{"n": 1}')
    assert (same.code, same.stdout, same.stderr) == (0, '{"n":1}\n', "")
    other = await run_cli(db_url, "promise", "resolve", "p", "2")
    assert (other.code, other.stdout) == (0, '{"n":1}\n')
    assert "already resolved with another value" in other.stderr


async def test_resolve_a_rejected_promise_exits_1(db_url: str) -> None:
    assert (await run_cli(db_url, "promise", "reject", "p", "no way")).code == 0
    result = await run_cli(db_url, "promise", "resolve", "p", "1")
    assert (result.code, result.stdout) == (1, "")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "promise p was already rejected: no way" in lines[0]


@pytest.mark.parametrize(("winner", "printed"), [("null", "null\n"), ('[1, "a"]', '[1,"a"]\n')])
async def test_reject_a_resolved_promise_prints_the_winner_and_exits_1(
    db_url: str, winner: str, printed: str
) -> None:
    assert (await run_cli(db_url, "promise", "resolve", "p", winner)).code == 0
    result = await run_cli(db_url, "promise", "reject", "p", "too late")
    assert (result.code, result.stdout) == (1, printed)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "promise p was already resolved" in lines[0]


async def test_reject_twice_succeeds_and_names_the_winning_message(db_url: str) -> None:
    first = await run_cli(db_url, "promise", "reject", "p", "first reason")
    assert (first.code, first.stdout, first.stderr) == (0, "", "")
    same = await run_cli(db_url, "promise", "reject", "p", "first reason")
    assert (same.code, same.stdout, same.stderr) == (0, "", "")
    other = await run_cli(db_url, "promise", "reject", "p", "second reason")
    assert (other.code, other.stdout) == (0, "")
    assert "already rejected with another message" in other.stderr
    assert other.stderr.strip().endswith("first reason")
    async with durable.Client(db_url) as client:
        assert await client.peek("p") == durable.PromiseState("rejected", message="first reason")
