"""SPEC 5 and 7.1, 7.3, 7.4 under chaos: workers killed with SIGKILL at random, nothing lost.

Three ``durable-worker`` processes run a few hundred `chaos_workflows.chaos` tasks (steps,
short durable sleeps, prints, two steps at once), launched in waves. Once a wave is under way
(one of its tasks has printed its second line), a random worker is killed at a random moment and
replaced at once, so that three stay alive. Every kill therefore lands on work in flight, however
fast or slow the machine is. Then the fleet drains, and the test checks, from outside:

- every task is complete with its expected result, its event log is the expected sequence;
- no step's code ran after its outcome was recorded (ledger rows against ``events.at``, both on
  the database's clock), and every recorded step ran; extra runs happen only before recording;
- every printed line is in the task's log exactly once, in order;
- poison tasks mixed into every wave (SystemExit, KeyboardInterrupt, a BaseException of their
  own, an unprintable error, an unstorable result) end ``failed`` with their error, and no
  worker ever exits because of them (SPEC 5, 7.9).

The kill schedule comes from ``random.Random(SEED)`` (printed), so a failing run can be replayed
with the same schedule; the assertions do not depend on how the schedule falls.

A second test freezes a worker (SIGSTOP) past its lease instead of killing it: when it wakes,
another worker has recorded the step it was about to run, and it must not run it again.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

import durable
from tests.acceptance import chaos_workflows as wf
from tests.acceptance.workflows_poison import FAILS, POISON
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import poll_until

pytestmark = pytest.mark.chaos

SEED = 1729
WAVES = 5  # one kill per wave
TASKS_PER_WAVE = 80
TASKS = WAVES * TASKS_PER_WAVE
STEPS = 8  # sequential steps per task, each followed by a durable sleep of 0-0.3 s
WORKERS = 3
WORKER_ARGS = ("--concurrency", "20", "--max-attempts", "1000")
KILL_DELAY = (0.0, 0.5)  # after a wave is under way
DRAIN_SECONDS = 60.0

UNFINISHED = """
SELECT id FROM durable.tasks WHERE state NOT IN ('complete', 'failed', 'cancelled') ORDER BY id
"""


async def test_random_worker_kills_lose_nothing_and_rerun_no_recorded_step(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    rng = random.Random(SEED)
    print(f"\nchaos: seed {SEED}, {TASKS} tasks, {WORKERS} workers")
    began = time.monotonic()
    observer = await asyncpg.connect(db_url, server_settings={"application_name": "chaos-test"})
    try:
        await observer.execute(wf.LEDGER_DDL)
        plans = [[round(rng.uniform(0.0, 0.3), 3) for _ in range(STEPS)] for _ in range(TASKS)]
        fleet = list(await asyncio.gather(*(workers(*WORKER_ARGS).start() for _ in range(WORKERS))))
        async with durable.Client(db_url) as client:
            by_id: dict[int, list[float]] = {}
            poison: dict[int, str] = {}
            kills = 0
            for wave in range(WAVES):
                for name, error_type in FAILS:
                    handle = await client.launch(f"{POISON}:{name}", name=f"poison {wave}")
                    poison[handle.id] = error_type
                launched = []
                for number in range(wave * TASKS_PER_WAVE, (wave + 1) * TASKS_PER_WAVE):
                    handle = await client.launch(
                        wf.chaos, name=f"chaos {number}", args=[db_url, plans[number]]
                    )
                    by_id[handle.id] = plans[number]
                    launched.append(handle.id)
                await _under_way(client, launched[-1])
                await _kill_one(rng, fleet, workers)
                kills += 1
            chaos_seconds = time.monotonic() - began

            drain_began = time.monotonic()
            await _drain(client, observer)
            drain_seconds = time.monotonic() - drain_began

            infos = {t.id: t for t in await client.list_tasks(limit=TASKS * 2)}
            poisoned = {i: infos.pop(i) for i in poison}
            wrongly = {
                i: (t.state, t.error)
                for i, t in poisoned.items()
                if t.state != "failed" or t.error is None or t.error["type"] != poison[i]
            }
            assert not wrongly, f"poison tasks that did not fail with their error: {wrongly}"
            report = await wf.ledger_report(observer)
            attempts = Counter(info.attempts for info in infos.values())
            resumed = sum(n for a, n in attempts.items() if a > 1)
            spread = dict(sorted(attempts.items()))
            print(
                f"chaos: {kills} kills in {chaos_seconds:.1f} s; drained in {drain_seconds:.1f} s;"
                f" {resumed} tasks resumed after a kill (attempts: {spread});"
                f" {sum(s.runs for s in report.steps)} step runs for {len(report.steps)} recorded"
                f" steps, {report.duplicates} duplicate runs before recording;"
                f" {time.monotonic() - began:.1f} s in all"
            )

            _check_tasks(infos, by_id)
            await _check_events(observer, by_id)
            _check_ledger(report, by_id)
            await _check_logs(observer, client, by_id, infos)

            assert kills == WAVES
            assert resumed > 0, "no task was ever resumed after a kill"
            assert any(w.has_log("took over the tasks of dead workers") for w in fleet)
            assert all(w.process is not None and w.process.returncode is None for w in fleet)
    finally:
        await observer.close()


async def test_frozen_worker_does_not_rerun_a_recorded_step(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    """SPEC 7.1 with a worker frozen (SIGSTOP) past its lease, as a long GC pause or VM freeze.

    Worker A records step s0 and the timer after it, and is frozen during the timer. Worker B
    takes the task over, replays it and records step s1. Then A wakes up: its timer is due, but
    the task is no longer its own, so s1's code must not run there again.
    """
    observer = await asyncpg.connect(db_url, server_settings={"application_name": "chaos-test"})
    try:
        await observer.execute(wf.LEDGER_DDL)
        first = await workers().start()
        async with durable.Client(db_url) as client:
            task = await client.launch(wf.steady, name="frozen", args=[db_url, 2, 1.0])
            async for line in client.tail(task.id):
                if line == "line 0":  # s0 is recorded
                    break

            async def timer_recorded() -> bool:
                events = await client.events(task.id)
                return any(e.kind == "sleep" for e in events)

            await poll_until(timer_recorded, "the timer after s0 to be recorded")
            first.signal(signal.SIGSTOP)  # frozen during its in-memory 1 s timer
            try:
                second = await workers().start()
                assert await client.result(task.id, timeout=15) == 2
                assert second.has_log("took over the tasks of dead workers")
            finally:
                first.signal(signal.SIGCONT)

            async def first_is_back() -> bool:
                # A's due timer fires the moment it wakes; its heartbeat, a round trip later,
                # finds it was declared dead and registers it again. (Or the late run shows.)
                pids = await observer.fetch("SELECT pid FROM durable.workers")
                late = await observer.fetchval(
                    "SELECT count(*) FROM ledger WHERE worker_pid = $1 AND step = 's1'", first.pid
                )
                return first.pid in {r["pid"] for r in pids} or late > 0

            await poll_until(first_is_back, "the frozen worker to wake up")
            # Whatever A started when it woke, it has finished once it has stopped.
            first.signal(signal.SIGTERM)
            assert await first.wait(timeout=15) == 0

        report = await wf.ledger_report(observer)
        runs = {s.label: (s.runs, s.late) for s in report.steps}
        print(f"frozen worker: step runs (runs, after recording): {runs}")
        late = [(s.label, s.recorded_at, s.last_run_at) for s in report.late]
        assert not late, f"the frozen worker ran a step after another one recorded it: {late}"
        assert set(runs) == {"s0", "s1"}
    finally:
        await observer.close()


async def _under_way(client: durable.Client, task_id: int) -> None:
    """Wait until a wave's last task has recorded its first step (printed its second line)."""
    async for line in client.tail(task_id):
        if line == "line 1":
            return
    pytest.fail(f"task {task_id} ended before its second line")


async def _kill_one(
    rng: random.Random, fleet: list[WorkerProcess], workers: Callable[..., WorkerProcess]
) -> None:
    """SIGKILL a random worker after a random short delay, and start its replacement."""
    await asyncio.sleep(rng.uniform(*KILL_DELAY))  # the kill schedule's rhythm, not a wait
    index = rng.randrange(len(fleet))
    victim = fleet[index]
    victim.signal(signal.SIGKILL)
    assert await victim.wait() == -signal.SIGKILL
    fleet[index] = await workers(*WORKER_ARGS).start()


async def _drain(client: durable.Client, observer: asyncpg.Connection) -> None:
    """Wait until every task is final, within DRAIN_SECONDS in all."""
    deadline = time.monotonic() + DRAIN_SECONDS
    for row in await observer.fetch(UNFINISHED):
        try:
            await client.wait(row["id"], timeout=max(deadline - time.monotonic(), 0.1))
        except durable.Timeout:
            states = await observer.fetch(
                "SELECT state, count(*) FROM durable.tasks GROUP BY state ORDER BY state"
            )
            pytest.fail(f"tasks still not final after {DRAIN_SECONDS} s: {dict(states)}")


def _check_tasks(infos: dict[int, durable.TaskInfo], plans: dict[int, list[float]]) -> None:
    assert set(infos) == set(plans)
    not_complete = {i: (t.state, t.error) for i, t in infos.items() if t.state != "complete"}
    assert not not_complete, f"{len(not_complete)} tasks did not complete: {not_complete}"
    wrong = {
        i: t.result for i, t in infos.items() if t.result != wf.expected_chaos_result(i, plans[i])
    }
    assert not wrong, f"{len(wrong)} tasks returned something else: {wrong}"


async def _check_events(observer: asyncpg.Connection, plans: dict[int, list[float]]) -> None:
    logs = {row["task_id"]: row for row in await observer.fetch(wf.EVENT_LOGS)}
    wrong: dict[int, Any] = {}
    for task_id, pauses in plans.items():
        row = logs.get(task_id)
        expected = wf.chaos_events(pauses)
        if row is None:
            wrong[task_id] = None
        elif (
            row["seqs"] != list(range(len(expected)))
            or list(zip(row["kinds"], row["labels"], strict=True)) != expected
        ):
            wrong[task_id] = list(zip(row["seqs"], row["kinds"], row["labels"], strict=True))
    assert not wrong, f"{len(wrong)} event logs differ from the workflow's effects: {wrong}"


def _check_ledger(report: wf.LedgerReport, plans: dict[int, list[float]]) -> None:
    late = [(s.task_id, s.label, s.recorded_at, s.last_run_at, s.late) for s in report.late]
    assert not late, f"steps ran after their outcome was recorded (SPEC 7.1): {late}"
    never = [(s.task_id, s.label) for s in report.never_ran]
    assert not never, f"recorded steps whose code never ran: {never}"
    assert not report.unrecorded, f"steps ran but never recorded: {report.unrecorded}"
    assert not report.stamp_mismatches, f"ctx.now() not replayed: {report.stamp_mismatches}"
    labels = report.labels_by_task()
    missing = {i: p for i, p in plans.items() if labels.get(i) != set(wf.chaos_steps(p))}
    assert not missing, f"tasks without every step recorded: {sorted(missing)}"


async def _check_logs(
    observer: asyncpg.Connection,
    client: durable.Client,
    plans: dict[int, list[float]],
    infos: dict[int, durable.TaskInfo],
) -> None:
    logs = {row["task_id"]: row for row in await observer.fetch(wf.TASK_LOGS)}
    wrong: dict[int, Any] = {}
    for task_id, pauses in plans.items():
        row = logs.get(task_id)
        expected = wf.chaos_lines(pauses)
        if row is None or row["lines"] != expected or row["numbers"] != list(range(len(expected))):
            wrong[task_id] = None if row is None else list(row["lines"])
    assert not wrong, f"{len(wrong)} task logs are not each line once, in order: {wrong}"
    # And as a user reads them: the client's tail of a few tasks that were resumed.
    resumed = sorted(i for i, t in infos.items() if t.attempts > 1)[:5]
    for task_id in resumed:
        lines = [line async for line in client.tail(task_id)]
        assert lines == wf.chaos_lines(plans[task_id]), f"tail of task {task_id}: {lines}"
