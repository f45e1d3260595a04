"""durable-worker's start: signals before the loop runs, and a database that is not up yet.

- A SIGTERM that arrives while the worker is still importing (the first few hundred
  milliseconds) stops it gracefully (exit 0, a log line) instead of killing it: the handler
  is installed before durable, asyncpg or uvloop are loaded. The moment it is installed is
  read from /proc (SigCgt), and at that moment uvloop's library must not be mapped yet.
- A database that cannot be reached at start is retried with backoff, each attempt logged
  once; the worker starts when the database comes back, and gives up (exit 2, one line)
  after --connect-timeout.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import durable
from tests.acceptance.conftest import FAST
from tests.helpers.processes import REPO_ROOT, WorkerProcess, command, environment, run_cli
from tests.helpers.proxy import Proxy


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (its SigCgt mask)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


async def test_a_sigterm_during_start_up_stops_the_worker_gracefully(db_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command("durable-worker"),
        "--log-format",
        "json",
        cwd=REPO_ROOT,
        env=environment(db_url),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Nothing announces the handler: /proc is read in a tight loop (bounded), so that the
        # signal lands in the first moments, while the worker still imports.
        async with asyncio.timeout(10):
            while not catches(process.pid, signal.SIGTERM):
                assert process.returncode is None
                await asyncio.sleep(0.001)
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "uvloop" not in maps, "the handler was installed only once the event loop ran"
    stderr = err.decode()
    assert process.returncode == 0, stderr
    assert "stopping gracefully" in stderr
    assert "worker started" not in stderr


async def test_a_database_down_at_start_is_waited_for(db_url: str) -> None:
    async with Proxy(db_url) as proxy:
        proxy.pause()
        worker = WorkerProcess(proxy.url(db_url), *FAST, "--connect-timeout", "60")
        starting = asyncio.create_task(worker.start())
        try:
            await worker.wait_for_log("database unavailable; retrying", attempt=2)
            assert not starting.done()
            attempts = [line for line in worker.lines if line.get("attempt")]
            assert [line["attempt"] for line in attempts] == [1, 2]
            assert all(line["level"] == "warning" for line in attempts)
            proxy.resume()
            await asyncio.wait_for(starting, 30)
            async with durable.Client(db_url) as client:
                task = await client.launch("examples.hello_world:main", name="late")
                assert await client.result(task.id, timeout=15) is None
            assert all(not line.startswith("Traceback") for line in worker.raw)
        finally:
            starting.cancel()
            await worker.stop()


async def test_the_connect_timeout_bounds_the_wait(db_url: str) -> None:
    async with Proxy(db_url) as proxy:
        proxy.pause()
        result = await run_cli(
            proxy.url(db_url),
            "--log-format",
            "json",
            "--connect-timeout",
            "1",
            script="durable-worker",
        )
    assert result.code == 2, result
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: cannot reach the database")
    assert "see --connect-timeout" in lines[-1]
    assert all(line.startswith("{") for line in lines[:-1]), result.stderr
    assert len(lines) >= 2  # at least one attempt logged before giving up


async def test_connect_timeout_0_fails_at_once_and_a_bad_import_is_bad_input() -> None:
    down = "postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere"
    result = await run_cli(down, "--connect-timeout", "0", script="durable-worker")
    assert result.code == 2, result
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        "Error: cannot reach the database at postgresql://someone:***@127.0.0.1:1/nowhere: "
    )
    assert line.endswith("(gave up after 1 attempt; see --connect-timeout)")
    result = await run_cli(down, "--import", "no_such_module_here", script="durable-worker")
    assert result.code == 2, result
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no_such_module_here" in result.stderr and "(--import)" in result.stderr


async def test_an_outage_writes_only_one_line_log_records(db_url: str) -> None:
    """asyncpg's "Failed to restore the pool connection floor" (a warning with a traceback,
    from its own `logging` logger) comes out as one structlog line like every other."""
    async with Proxy(db_url) as proxy:
        worker = WorkerProcess(proxy.url(db_url), *FAST)
        try:
            await worker.start()
            proxy.pause()
            await proxy.break_connections()
            floor = "Failed to restore the pool connection floor; retrying"
            await worker.wait_for_log(floor, timeout=15, logger="asyncpg.pool")
            proxy.resume()
            await worker.wait_for_log("database reachable again", timeout=15)
        finally:
            await worker.stop()
    line = next(line for line in worker.lines if line.get("event") == floor)
    assert line["level"] == "warning" and line["error"]
    not_json = [raw for raw in worker.raw if not raw.startswith("{")]
    assert not_json == []
