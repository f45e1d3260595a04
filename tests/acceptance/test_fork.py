"""`durable fork ID --at SEQ` and `client.fork` (SPEC 14), with a real worker.

A task records a random draw (seq 0) and four steps (seq 1-4) that append to a ledger. Forked
at the seq of its third step, the fork replays the draw and the first two steps from the
copied events (same token, nothing appended) and runs the last two (appended again). Its log
holds every line the workflow printed, written by its own run, and `durable show` lists the
copied events as the original recorded them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import durable
from tests.helpers.processes import WorkerProcess, run_cli
from tests.helpers.waiting import follow_until

WORKFLOW = "tests.acceptance.workflows:four_steps"
LINES = ["did one", "did two", "did three", "did four"]


async def test_a_fork_replays_the_events_before_seq_and_runs_the_rest(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    await workers().start()
    async with durable.Client(db_url) as client:
        original = await client.launch(WORKFLOW, name="four", args=[str(ledger)])
        first = await client.result(original.id, timeout=30)
        events = await client.events(original.id)
        assert [(e.seq, e.kind, e.label) for e in events[1:]] == [
            (1, "step", "one"),
            (2, "step", "two"),
            (3, "step", "three"),
            (4, "step", "four"),
        ]
        assert ledger.read_text().splitlines() == ["one", "two", "three", "four"]

        forked = await run_cli(db_url, "fork", str(original.id), "--at", "3")
        assert forked.code == 0, forked.stderr
        fork_id = int(forked.stdout)  # the id alone on stdout, as `launch` prints it
        assert fork_id != original.id
        assert await client.result(fork_id, timeout=30) == first  # same token: replayed
        # Steps one and two (seq 1, 2) were replayed; three and four ran again.
        assert ledger.read_text().splitlines() == [
            "one", "two", "three", "four", "three", "four",
        ]  # fmt: skip
        assert [line async for line in client.tail(fork_id)] == LINES

        fork = await client.get(fork_id)
        assert fork.name == f"four (fork of {original.id} at 3)"
        assert (fork.workflow, fork.args, fork.queue) == (WORKFLOW, [str(ledger)], "default")
        assert fork.parent_id is None and fork.key is None

        shown = await run_cli(db_url, "show", str(fork_id), "--json")
        assert shown.code == 0, shown.stderr
        fork_events = json.loads(shown.stdout)["events"]
        original_events = [e.to_json() for e in events]
        copied = [{**e, "task_id": original.id} for e in fork_events[:3]]
        assert copied == original_events[:3]  # verbatim: kind, label, payload and time
        assert [(e["seq"], e["label"]) for e in fork_events[3:]] == [(3, "three"), (4, "four")]
        original_table = await run_cli(db_url, "show", str(original.id))
        table = await run_cli(db_url, "show", str(fork_id))
        rows = table.stdout.splitlines()[-5:]
        assert [row.split()[:3] for row in rows] == [
            ["0", "uuid", "uuid4"], ["1", "step", "one"], ["2", "step", "two"],
            ["3", "step", "three"], ["4", "step", "four"],
        ]  # fmt: skip
        assert rows[:3] == original_table.stdout.splitlines()[-5:-2]  # the same rows, times too


async def test_fork_at_zero_runs_everything_and_past_the_end_replays_everything(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    await workers().start()
    async with durable.Client(db_url) as client:
        original = await client.launch(WORKFLOW, args=[str(ledger)])
        first = await client.result(original.id, timeout=30)

        afresh = await client.fork(original.id, at=0, name="afresh")
        again = await client.result(afresh.id, timeout=30)
        assert again["token"] != first["token"]  # drawn anew
        whole = await client.fork(original.id, at=100)
        assert await client.result(whole.id, timeout=30) == first
        assert ledger.read_text().splitlines() == ["one", "two", "three", "four"] * 2
        assert (await client.get(afresh.id)).name == "afresh"
        assert [line async for line in client.tail(whole.id)] == LINES


async def test_fork_refuses_an_unknown_id_and_a_negative_seq(db_url: str) -> None:
    unknown = await run_cli(db_url, "fork", "999", "--at", "1")
    assert unknown.code == 2
    assert unknown.stderr.strip() == "Error: no task with id 999"
    negative = await run_cli(db_url, "fork", "1", "--at", "-1")
    assert negative.code == 2 and "Traceback" not in negative.stderr
    assert "--at" in negative.stderr
    async with durable.Client(db_url) as client:
        with pytest.raises(durable.TaskNotFound):
            await client.fork(999, at=1)
        with pytest.raises(ValueError, match="0 or more"):
            await client.fork(999, at=-1)
        assert await client.list_tasks() == []  # nothing was created


async def test_a_running_task_can_be_forked(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """What it has recorded so far is copied; both then run on their own."""
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    await workers().start()
    async with durable.Client(db_url) as client:
        original = await client.launch(
            "tests.acceptance.workflows:crash_in_the_middle", args=[str(ledger), str(gate)]
        )
        await follow_until(client, original.id, "after step one")  # blocked on the gate
        assert (await client.get(original.id)).state == "running"
        fork = await client.fork(original.id, at=1000)
        assert [(e.seq, e.label) for e in await client.events(fork.id)] == [(0, "one")]
        gate.touch()
        assert await client.result(original.id, timeout=30) == "done"
        assert await client.result(fork.id, timeout=30) == "done"
        assert sorted(ledger.read_text().splitlines()) == ["one", "two", "two"]
