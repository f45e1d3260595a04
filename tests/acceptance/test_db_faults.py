"""SPEC 5 ("Losing the database") and 7.1, 7.7: a worker whose database fails goes on.

- Its backends are terminated (``pg_terminate_backend``) several times mid-run: every task still
  completes, each step ran and was recorded once, the worker logs the outage, stays alive, and
  LISTEN is re-established (a new task starts at once, not at the 5 s polling fallback).
- The database goes away for ~2 s (a TCP proxy drops every connection and refuses new ones):
  the tasks launched before complete afterwards, each step once.
- The reply to a claim is lost after the server committed it (the connection dies right after
  the commit): the task must not stay `running` forever, held by nobody.
- The CLI pointed at a database that is down exits 2 with one line on stderr, no traceback,
  and never shows the URL's password.

The ledger of `chaos_workflows` is written over connections of its own (not through the proxy,
not named ``durable...``), so it records what the steps' code did whatever happens to the
worker's connections.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import datetime

import asyncpg
import pytest

import durable
from tests.acceptance import chaos_workflows as wf
from tests.acceptance.conftest import FAST
from tests.helpers.processes import (
    WorkerProcess,
    run_cli,
)
from tests.helpers.proxy import Proxy
from tests.helpers.waiting import poll_until

TASKS = 6
STEPS = 12
PAUSE = 0.15
PROMPT = 2.0  # seconds a new task may take to complete: well under the 5 s polling fallback

TERMINATE_WORKER_BACKENDS = """
SELECT clock_timestamp() AS at, application_name, pg_terminate_backend(pid) AS terminated
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND application_name LIKE 'durable%'
"""

NEW_LISTEN_BACKENDS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'durable-listen' AND backend_start > $1
"""


class Progress:
    """Counts the log lines tasks write, as announced by NOTIFY (``<id>:log``)."""

    def __init__(self) -> None:
        self.lines = 0
        self._changed = asyncio.Event()

    def on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload.endswith(":log"):
            self.lines += 1
            self._changed.set()

    async def at_least(self, count: int, timeout: float = 10) -> None:
        """Wait until ``count`` notifications have arrived in all."""
        async with asyncio.timeout(timeout):
            while self.lines < count:
                self._changed.clear()
                await self._changed.wait()


def count_logs(worker: WorkerProcess, event: str) -> int:
    return sum(1 for line in worker.lines if line.get("event") == event)


async def launch_steady(
    client: durable.Client, db_url: str, count: int, steps: int = STEPS, pause: float = PAUSE
) -> list[int]:
    return [
        (await client.launch(wf.steady, name=f"steady {i}", args=[db_url, steps, pause])).id
        for i in range(count)
    ]


async def check_each_step_once(
    client: durable.Client, observer: asyncpg.Connection, task_ids: list[int], steps: int
) -> wf.LedgerReport:
    """Every task complete; its steps recorded once each and their code run exactly once."""
    for task_id in task_ids:
        try:
            assert await client.result(task_id, timeout=20) == steps
        except durable.TaskFailed as error:
            pytest.fail(f"task {task_id} failed: {error}\n{error.traceback}")
        events = await client.events(task_id)
        labels = [e.label for e in events if e.kind == "step"]
        assert labels == wf.steady_steps(steps), f"task {task_id} recorded {labels}"
        lines = [line async for line in client.tail(task_id)]
        assert lines == [f"line {i}" for i in range(steps)], f"task {task_id} logged {lines}"
    report = await wf.ledger_report(observer)
    late = [(s.task_id, s.label, s.recorded_at, s.last_run_at) for s in report.late]
    assert not late, f"steps ran after their outcome was recorded: {late}"
    # One worker that never lost its tasks: no step had a reason to run twice.
    runs = {(s.task_id, s.label): s.runs for s in report.steps if s.task_id in task_ids}
    assert len(runs) == len(task_ids) * steps
    assert all(n == 1 for n in runs.values()), {k: n for k, n in runs.items() if n != 1}
    assert not report.unrecorded, report.unrecorded
    assert not report.stamp_mismatches, report.stamp_mismatches
    return report


async def check_starts_promptly(client: durable.Client, db_url: str) -> None:
    """New tasks are claimed on NOTIFY, so each completes within PROMPT seconds.

    Launched one after the other: the polling fallback could rescue at most the first.
    """
    for number in range(3):
        handle = await client.launch(wf.steady, name=f"prompt {number}", args=[db_url, 1, 0])
        began = time.monotonic()
        try:
            assert await client.result(handle.id, timeout=PROMPT) == 1
        except durable.Timeout:
            pytest.fail(f"a task launched after the outage did not complete within {PROMPT} s")
        print(f"new task {number} completed in {time.monotonic() - began:.2f} s")


async def test_terminated_backends_mid_run(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    # The test's own connections are named otherwise: only the worker's are terminated.
    observer = await asyncpg.connect(db_url, server_settings={"application_name": "faults-test"})
    try:
        await observer.execute(wf.LEDGER_DDL)
        progress = Progress()
        await observer.add_listener("durable_task_events", progress.on_notify)
        worker = await workers("--concurrency", "10").start()
        async with durable.Client(db_url) as client:
            task_ids = await launch_steady(client, db_url, TASKS)
        # The client is closed: from here until the last termination the test talks to the
        # database only through `observer`.

        rounds: list[list[str]] = []
        last_at: datetime | None = None
        for _ in range(4):
            # Terminate only once the worker has made progress again since the last time.
            await progress.at_least(progress.lines + 4)
            rows = await observer.fetch(TERMINATE_WORKER_BACKENDS)
            rounds.append(sorted(r["application_name"] for r in rows if r["terminated"]))
            last_at = max((r["at"] for r in rows), default=last_at)
        print(f"terminated backends, by round: {rounds}")
        assert all(rounds), f"a round found no worker backend to terminate: {rounds}"
        assert any("durable-listen" in names for names in rounds)

        async def listening_again() -> bool:
            # A LISTEN connection opened after the last termination, and the worker saying so.
            fresh = await observer.fetchval(NEW_LISTEN_BACKENDS, last_at)
            lost = count_logs(worker, "listen connection lost; reconnecting")
            back = count_logs(worker, "listen connection re-established")
            return fresh > 0 and lost > 0 and back == lost

        await poll_until(listening_again, "the worker to LISTEN again")

        async with durable.Client(db_url) as client:
            await check_each_step_once(client, observer, task_ids, STEPS)
            await check_starts_promptly(client, db_url)
            assert worker.process is not None and worker.process.returncode is None
            (registered,) = await client.workers()
            assert registered.heartbeat_age < 1.5
        warnings = sorted({str(w["event"]) for w in worker.lines if w.get("level") == "warning"})
        print(f"worker warnings: {warnings}")
        assert "listen connection lost; reconnecting" in warnings
    finally:
        await observer.close()


OUTAGE = 2.0


async def test_database_away_for_two_seconds(db_url: str) -> None:
    observer = await asyncpg.connect(db_url, server_settings={"application_name": "faults-test"})
    async with Proxy(db_url) as proxy:
        worker = WorkerProcess(proxy.url(db_url), *FAST, "--concurrency", "10")
        try:
            await observer.execute(wf.LEDGER_DDL)
            await worker.start()
            async with durable.Client(db_url) as client:  # direct: not through the proxy
                task_ids = await launch_steady(client, db_url, TASKS)
                async for line in client.tail(task_ids[-1]):
                    if line == "line 1":  # every task is under way
                        break

                proxy.pause()
                broken = await proxy.break_connections()
                began = time.monotonic()
                await worker.wait_for_log("listen connection lost; reconnecting", timeout=5)
                # The outage itself: the database stays away for OUTAGE seconds.
                await asyncio.sleep(max(OUTAGE - (time.monotonic() - began), 0))
                refused = proxy.refused
                recorded_during = await observer.fetchval(
                    "SELECT count(*) FROM durable.events WHERE at > now() - $1::float8 * interval"
                    " '1 second'",
                    OUTAGE - 0.5,
                )
                proxy.resume()
                print(f"outage: {broken} connections broken, {refused} reconnects refused")
                assert broken > 0
                assert refused > 0, "the worker did not try to reconnect during the outage"
                assert recorded_during == 0, "events were recorded while the database was away"

                await check_each_step_once(client, observer, task_ids, STEPS)
                await worker.wait_for_log("listen connection re-established", timeout=10)
                await check_starts_promptly(client, db_url)
                assert worker.process is not None and worker.process.returncode is None
        finally:
            await worker.stop()
            await observer.close()


async def test_lost_reply_to_a_claim_leaves_no_task_running_forever(db_url: str) -> None:
    """The server commits a claim whose reply never reaches the worker (SPEC 5, 7.4).

    The task is then `running`, held by a live worker that does not know it holds it; that
    worker must find out (or give it back) once its connections break, not keep it forever.
    """
    observer = await asyncpg.connect(db_url, server_settings={"application_name": "faults-test"})
    async with Proxy(db_url) as proxy:
        worker = WorkerProcess(proxy.url(db_url), *FAST, "--concurrency", "10")
        try:
            await observer.execute(wf.LEDGER_DDL)
            await worker.start()
            async with durable.Client(db_url) as client:
                # Claims are the statements with SKIP LOCKED (SPEC 1): lose the next one's reply.
                proxy.lose_results(matching="SKIP LOCKED")
                handle = await client.launch(wf.steady, name="victim", args=[db_url, 1, 0])

                async def claimed() -> bool:
                    state = await observer.fetchval(
                        "SELECT state FROM durable.tasks WHERE id = $1", handle.id
                    )
                    return bool(state == "running")

                # The NOTIFY gets through, the claim runs, its reply is lost.
                await poll_until(claimed, "the claim to commit on the server")
                assert proxy.lost == 1
                await proxy.break_connections()
                proxy.deliver_results()
                try:
                    assert await client.result(handle.id, timeout=10) == 1
                except durable.Timeout:
                    row = await observer.fetchrow(
                        "SELECT state, worker_id, attempts FROM durable.tasks WHERE id = $1",
                        handle.id,
                    )
                    held = [(w.id, w.tasks_held) for w in await client.workers()]
                    pytest.fail(
                        f"task {handle.id} is stuck after its claim's reply was lost: "
                        f"{dict(row)}; workers (id, tasks held): {held}"
                    )
                report = await wf.ledger_report(observer)
                assert [(s.label, s.runs, s.late) for s in report.steps] == [("s0", 1, 0)]
        finally:
            await worker.stop()
            await observer.close()


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


URL = "{url}"  # where the test puts the URL of the database that is down


@pytest.mark.parametrize("down", ["refused", "hung-up"])
@pytest.mark.parametrize(
    ("program", "argv"),
    [
        ("durable", ["--database-url", URL, "list"]),
        ("durable", ["launch", "x", "examples.hello_world:main", "--database-url", URL]),
        ("durable-worker", ["--database-url", URL, "--connect-timeout", "0"]),
    ],
    ids=["list", "launch", "worker"],
)
async def test_cli_against_a_database_that_is_down(
    program: str, argv: list[str], down: str
) -> None:
    """Exit 2, one line on stderr, no traceback, no password (SPEC 6, 7.7).

    ``refused``: nothing listens on the port. ``hung-up``: something accepts the connection and
    closes it at once (a proxy or pooler in front of a database that is gone).
    """
    async with Proxy("postgresql://127.0.0.1:1/unused") as proxy:
        proxy.pause()  # never forwards: the target does not matter
        port = closed_port() if down == "refused" else proxy.port
        url = f"postgresql://user:s3cret@127.0.0.1:{port}/db"
        args = [url if arg == URL else arg for arg in argv]
        result = await run_cli(None, *args, timeout=30, script=program)
        code, out, err = result.code, result.stdout, result.stderr
        if down == "hung-up":
            assert proxy.refused > 0
    assert code == 2, (code, out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in out + err
    assert "s3cret" not in out + err
    assert "database" in err.lower(), err  # it says what it could not reach
