"""The real CLI against real workers: hello world, exit codes, and bad input (SPEC 6, 7.7)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

import durable
from durable.store.migrate import head_revision
from tests.helpers.processes import REPO_ROOT, WorkerProcess, command, environment, run_cli


async def test_hello_world(db_url: str, workers: Callable[..., WorkerProcess]) -> None:
    await workers().start()
    result = await run_cli(db_url, "launch", "--tail", "my first task", "examples.hello_world:main")
    assert result.code == 0, result.stderr
    assert result.stdout == "Hello, my first task!\n"
    task_id = int(result.stderr.strip().splitlines()[0])
    show = await run_cli(db_url, "show", str(task_id), "--json")
    assert show.code == 0


async def test_launch_prints_only_the_id_and_tail_follows(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    launched = await run_cli(db_url, "launch", "greeting", "examples.hello_world:main")
    assert launched.code == 0, launched.stderr
    task_id = launched.stdout.strip()
    assert task_id.isdigit() and launched.stdout == f"{task_id}\n"
    await workers().start()
    tailed = await run_cli(db_url, "tail", task_id)
    assert (tailed.code, tailed.stdout) == (0, "Hello, greeting!\n")


async def test_a_failing_task_exits_1_with_its_error(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    result = await run_cli(db_url, "launch", "--tail", "doomed", "tests.acceptance.workflows:fails")
    assert result.code == 1
    assert result.stdout == "about to fail\n"
    assert "ValueError" in result.stderr and "this workflow always fails" in result.stderr
    assert "Traceback" in result.stderr  # the stored traceback of the workflow, by design


async def test_arguments_travel_as_json(db_url: str, workers: Callable[..., WorkerProcess]) -> None:
    await workers().start()
    launched = await run_cli(
        db_url, "launch", "--arg", "1", "--arg", '{"a": [true, null]}', "--kwargs", '{"k": "v"}',
        "echo", "tests.acceptance.workflows:returns_args",
    )  # fmt: skip
    assert launched.code == 0, launched.stderr
    async with durable.Client(db_url) as client:
        result = await client.result(int(launched.stdout), timeout=30)
    assert result == {"args": [1, {"a": [True, None]}], "kwargs": {"k": "v"}}


async def test_an_idempotency_key_launches_once(db_url: str) -> None:
    first = await run_cli(db_url, "launch", "--key", "order-7", "a", "examples.hello_world:main")
    second = await run_cli(db_url, "launch", "--key", "order-7", "b", "examples.hello_world:main")
    assert first.code == second.code == 0
    assert first.stdout == second.stdout


async def test_os_system_is_never_run(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    await workers().start()
    result = await run_cli(
        db_url, "launch", "--tail", "--arg", f'"touch {marker}"', "evil", "os:system"
    )
    assert result.code == 1
    assert "refusing to import 'os'" in result.stderr  # not even imported (SPEC 5)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["launch", "--arg", "{bad", "x", "examples.hello_world:main"], "--arg"),
        (["launch", "--kwargs", "[1]", "x", "examples.hello_world:main"], "--kwargs"),
        (["launch", "x", "no-colon-here"], "module:"),
        (["show", "999999"], "999999"),
        (["tail", "999999"], "999999"),
        (["cancel", "999999"], "999999"),
        (["events", "999999"], "999999"),
        (["show", "99999999999999999999"], "99999999999999999999"),  # past bigint
        (["notify", "999999", "ping"], "999999"),
        (["list", "--state", "sleeping"], "sleeping"),
        # What Postgres cannot store is bad input too, not "unexpected error: <asyncpg class>".
        (["launch", "--arg", '"a\\u0000b"', "x", "examples.hello_world:main"], "NUL"),
        (["launch", "--arg", '["\\ud800"]', "x", "examples.hello_world:main"], "surrogate"),
        (["launch", "--kwargs", '{"k\\u0000": 1}', "x", "examples.hello_world:main"], "NUL"),
        (["launch", "--key", "\udcff", "x", "examples.hello_world:main"], "surrogate"),
        (["launch", "\udcff", "examples.hello_world:main"], "surrogate"),
        (["list", "--limit", "99999999999999999999"], "--limit"),
        (["list", "--workflow", "\udcff"], "surrogate"),
        (["promise", "reject", "p", "\udcff"], "surrogate"),
    ],
)
async def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    db_url: str, args: list[str], needle: str
) -> None:
    result = await run_cli(db_url, *args)
    assert result.code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    async with durable.Client(db_url) as client:
        assert await client.list_tasks() == []


async def test_values_that_are_not_json_are_refused_at_launch(db_url: str) -> None:
    async with durable.Client(db_url) as client:
        with pytest.raises(durable.SerializationError, match="set"):
            await client.launch("examples.hello_world:main", args=[{1, 2}])
        assert await client.list_tasks() == []


async def test_unreachable_database_exits_2_with_the_password_masked() -> None:
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere"
    malformed = "postgresql://someone:s3cret-pw@[bad/nowhere"  # does not even parse
    for database_url in (url, malformed):
        for args in (["list"], ["launch", "x", "examples.hello_world:main"], ["show", "1"]):
            result = await run_cli(None, "--database-url", database_url, *args)
            assert result.code == 2, result
            assert "s3cret-pw" not in result.stdout + result.stderr
            assert "Traceback" not in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1


async def test_migrate_refuses_a_schema_newer_than_the_code(db_url: str) -> None:
    connection = await asyncpg.connect(db_url)
    try:
        await connection.execute("UPDATE durable.alembic_version SET version_num = 'f00_future'")
        result = await run_cli(db_url, "migrate")
        assert result.code == 2, result
        assert result.stderr.strip().splitlines() == [
            "Error: the database schema (f00_future) is newer than this code "
            f"({head_revision()}): upgrade durable-engine; the schema was left as it is"
        ]
        assert await connection.fetchval("SELECT version_num FROM durable.alembic_version") == (
            "f00_future"
        )
    finally:
        await connection.close()


async def test_notify_a_finished_task_exits_1(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    async with durable.Client(db_url) as client:
        task = await client.launch("tests.acceptance.workflows:returns_args")
        await client.result(task.id, timeout=30)
    result = await run_cli(db_url, "notify", str(task.id), "ping", '{"n": 1}')
    assert result.code == 1, result
    assert "task is finished" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_an_old_schema_asks_for_migrate(empty_db_url: str) -> None:
    result = await run_cli(empty_db_url, "list")
    assert result.code == 2
    assert "durable migrate" in result.stderr
    worker = WorkerProcess(empty_db_url)
    with pytest.raises(AssertionError, match="durable migrate"):
        await worker.start()
    assert await worker.wait() == 2
    migrated = await run_cli(empty_db_url, "migrate")
    assert migrated.code == 0
    assert (await run_cli(empty_db_url, "migrate", "--check")).code == 0


async def test_tail_says_when_no_live_worker_serves_the_queue(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    await workers("--queue", "other").start()  # alive, but on another queue
    process = await asyncio.create_subprocess_exec(
        *command("durable"),
        "launch",
        "--tail",
        "--queue",
        "nobody",
        "waiting",
        "examples.hello_world:main",
        cwd=REPO_ROOT,
        env=environment(db_url),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        async with asyncio.timeout(15):
            task_id = (await process.stderr.readline()).decode().strip()
            warning = (await process.stderr.readline()).decode()
        assert warning.startswith(f"no live worker serves queue 'nobody': task {task_id} is ")
        assert "durable-worker --queue nobody" in warning
        # The tail goes on: a worker for the queue finishes the task, and it exits 0.
        await workers("--queue", "nobody").start()
        out, err = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (process.returncode, out.decode(), err.decode()) == (0, "Hello, waiting!\n", "")
