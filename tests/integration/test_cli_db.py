"""The `durable` CLI as a subprocess against a real database (SPEC 6): output and exit codes."""

from __future__ import annotations

import json

import pytest

import durable
from tests.helpers.processes import WorkerProcess, run_cli

HELLO = "examples.hello_world:main"


async def launch(db_url: str, *args: str) -> str:
    result = await run_cli(db_url, "launch", *args)
    assert result.code == 0, result.stderr
    task_id = result.stdout.strip()
    assert result.stdout == f"{task_id}\n" and task_id.isdigit()
    return task_id


@pytest.mark.parametrize("command", ["show", "tail", "cancel", "events", "retry", "logs"])
async def test_an_unknown_id_exits_2(db_url: str, command: str) -> None:
    result = await run_cli(db_url, command, "424242")
    assert result.code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "424242" in result.stderr
    assert "Traceback" not in result.stderr


async def test_launch_list_and_keys(db_url: str) -> None:
    first = await launch(db_url, "--key", "k-1", "first", HELLO)
    again = await launch(db_url, "--key", "k-1", "other name", HELLO)
    second = await launch(db_url, "--queue", "q2", "second", HELLO)
    assert first == again != second
    listed = await run_cli(db_url, "list", "--json")
    assert listed.code == 0
    tasks = json.loads(listed.stdout)
    assert [t["id"] for t in tasks] == [int(second), int(first)]  # newest first
    assert tasks[0]["queue"] == "q2" and tasks[1]["key"] == "k-1"
    table = await run_cli(db_url, "list", "--state", "pending", "--limit", "1")
    assert table.stdout.splitlines()[0].split()[:4] == ["id", "name", "workflow", "state"]
    assert len(table.stdout.splitlines()) == 2
    assert json.loads((await run_cli(db_url, "list", "--state", "failed", "--json")).stdout) == []


async def test_cancel_then_retry(db_url: str) -> None:
    task_id = await launch(db_url, "doomed", HELLO)
    retried = await run_cli(db_url, "retry", task_id)
    assert (retried.code, retried.stdout) == (1, "")
    assert "pending" in retried.stderr
    cancelled = await run_cli(db_url, "cancel", task_id)
    assert (cancelled.code, cancelled.stdout) == (0, "cancelled\n")
    again = await run_cli(db_url, "cancel", task_id)
    assert (again.code, again.stdout) == (0, "cancelled\n")
    assert "already" in again.stderr
    tailed = await run_cli(db_url, "tail", task_id)
    assert (tailed.code, tailed.stdout) == (3, "")
    retried = await run_cli(db_url, "retry", task_id)
    assert (retried.code, retried.stdout) == (0, "pending\n")


async def test_show_events_and_workers(db_url: str) -> None:
    task_id = await launch(db_url, "--arg", "[1, 2]", "--kwargs", '{"a": "b"}', "shown", HELLO)
    shown = await run_cli(db_url, "show", task_id, "--json")
    assert shown.code == 0
    data = json.loads(shown.stdout)
    assert data["id"] == int(task_id) and data["state"] == "pending"
    assert (data["args"], data["kwargs"], data["events"]) == ([[1, 2]], {"a": "b"}, [])
    table = await run_cli(db_url, "show", task_id)
    assert "workflow: " + HELLO in table.stdout
    assert table.stdout.splitlines()[-1].split() == ["seq", "kind", "label", "payload", "at"]
    events = await run_cli(db_url, "events", task_id, "--json")
    assert (events.code, json.loads(events.stdout)) == (0, [])
    logs = await run_cli(db_url, "logs", task_id)
    assert (logs.code, logs.stdout) == (0, "")
    workers = await run_cli(db_url, "workers", "--json")
    assert (workers.code, json.loads(workers.stdout)) == (0, [])


async def test_a_task_run_by_a_worker(db_url: str) -> None:
    worker = await WorkerProcess(db_url, "--shutdown-grace", "1").start()
    try:
        tailed = await run_cli(db_url, "launch", "--tail", "my first task", HELLO)
        assert (tailed.code, tailed.stdout) == (0, "Hello, my first task!\n")
        task_id = tailed.stderr.splitlines()[0]
        logs = await run_cli(db_url, "logs", "--follow", task_id)
        assert (logs.code, logs.stdout) == (0, "Hello, my first task!\n")
        refused = await run_cli(db_url, "launch", "--tail", "evil", "os:system")
        assert (refused.code, refused.stdout) == (1, "")
        evil_id = refused.stderr.splitlines()[0]
        shown = await run_cli(db_url, "show", evil_id)
        assert "state:    failed" in shown.stdout and "refusing to import 'os'" in shown.stdout
        listed = await run_cli(db_url, "workers")
        assert str(worker.pid) in listed.stdout
    finally:
        worker.signal(15)
        assert await worker.wait() == 0


async def test_migrate_and_check(empty_db_url: str) -> None:
    behind = await run_cli(empty_db_url, "migrate", "--check")
    assert behind.code == 1 and "durable migrate" in behind.stderr
    assert (await run_cli(empty_db_url, "list")).code == 2
    migrated = await run_cli(empty_db_url, "migrate")
    assert migrated.code == 0 and len(migrated.stdout.splitlines()) == 1
    assert (await run_cli(empty_db_url, "migrate", "--check")).code == 0
    async with durable.Client(empty_db_url) as client:
        assert await client.list_tasks() == []


async def test_an_unreachable_database_exits_2() -> None:
    url = "postgresql://u:s3cret@127.0.0.1:1/x"
    for args in (["list"], ["workers"], ["migrate"], ["show", "1"]):
        result = await run_cli(None, "--database-url", url, *args)
        assert result.code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert "s3cret" not in result.stdout + result.stderr
