"""Workflows for the chaos and database-fault tests, and the ledger they are checked against.

Every step inserts one row into ``ledger``, a table of the test database outside durable's
schema: the externally visible effect of the step's code having run. The row's ``at`` is
``clock_timestamp()`` on the same server as ``durable.events.at``, so a test can compare the two
and prove that no step ran after its outcome was recorded (SPEC 7.1).

Steps reach the ledger through one small asyncpg pool per worker process and URL, connected
straight to the test database under the application name ``ledger``: not through a proxy a test
breaks, and not named ``durable...``, so the backends a test terminates are only the worker's.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

import durable

LEDGER_DDL = """
CREATE TABLE ledger (
    id bigserial PRIMARY KEY,
    task_id bigint NOT NULL,
    step text NOT NULL,
    stamp text NOT NULL,
    worker_pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""

_pools: dict[str, asyncpg.Pool] = {}
_pools_lock = asyncio.Lock()


async def _ledger_pool(url: str) -> asyncpg.Pool:
    pool = _pools.get(url)
    if pool is not None:
        return pool
    async with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=2, server_settings={"application_name": "ledger"}
            )
            assert pool is not None
            _pools[url] = pool
    return pool


async def touch(ledger_url: str, task_id: int, step: str, stamp: str, value: int) -> int:
    """The step: write a ledger row saying this step's code ran, and return ``value``."""
    pool = await _ledger_pool(ledger_url)
    await pool.execute(
        "INSERT INTO ledger (task_id, step, stamp, worker_pid) VALUES ($1, $2, $3, $4)",
        task_id,
        step,
        stamp,
        os.getpid(),
    )
    return value


def step_value(task_id: int, index: int) -> int:
    """What step number ``index`` of a task returns (distinct per task and step)."""
    return task_id * 1000 + index


@durable.workflow
async def chaos(ctx: durable.Context, ledger_url: str, pauses: list[float]) -> dict[str, Any]:
    """Steps, short durable sleeps and prints; two steps at once at the end.

    Prints ``line 0`` .. ``line {len(pauses) + 1}``; returns the task id and the sum of what
    its steps returned (`expected_chaos_result`).
    """
    stamp = ctx.now().isoformat()  # recorded: every run of this task passes the same stamp
    print("line 0")
    total = 0
    for index, pause in enumerate(pauses):
        total += await ctx.step(
            touch,
            ledger_url,
            ctx.task_id,
            f"s{index}",
            stamp,
            step_value(ctx.task_id, index),
            name=f"s{index}",
        )
        print(f"line {index + 1}")
        await ctx.sleep(pause)
    last = len(pauses)
    both = await asyncio.gather(
        ctx.step(touch, ledger_url, ctx.task_id, "p0", stamp, last, name="p0"),
        ctx.step(touch, ledger_url, ctx.task_id, "p1", stamp, last + 1, name="p1"),
    )
    total += sum(both)
    print(f"line {last + 1}")
    return {"task": ctx.task_id, "total": total}


def chaos_steps(pauses: list[float]) -> list[str]:
    """The step labels of a `chaos` task, in seq order."""
    return [f"s{index}" for index in range(len(pauses))] + ["p0", "p1"]


def chaos_events(pauses: list[float]) -> list[tuple[str, str]]:
    """The (kind, label) of every event of a complete `chaos` task, in seq order."""
    events = [("now", "now")]
    for index in range(len(pauses)):
        events += [("step", f"s{index}"), ("sleep", "sleep")]
    return [*events, ("step", "p0"), ("step", "p1")]


def chaos_lines(pauses: list[float]) -> list[str]:
    """The log of a `chaos` task."""
    return [f"line {k}" for k in range(len(pauses) + 2)]


def expected_chaos_result(task_id: int, pauses: list[float]) -> dict[str, Any]:
    """What a `chaos` task returns."""
    last = len(pauses)
    total = sum(step_value(task_id, i) for i in range(last)) + last + (last + 1)
    return {"task": task_id, "total": total}


@durable.workflow
async def steady(ctx: durable.Context, ledger_url: str, steps: int, pause: float) -> int:
    """``steps`` steps, each followed by a line and a durable sleep; returns the step count."""
    stamp = ctx.now().isoformat()
    done = 0
    for index in range(steps):
        await ctx.step(touch, ledger_url, ctx.task_id, f"s{index}", stamp, index, name=f"s{index}")
        done += 1
        print(f"line {index}")
        await ctx.sleep(pause)
    return done


def steady_steps(steps: int) -> list[str]:
    """The step labels of a `steady` task."""
    return [f"s{index}" for index in range(steps)]


# -- checking the ledger against the event log ---------------------------------------------------

LEDGER_VERSUS_EVENTS = """
SELECT e.task_id, e.label, e.at AS recorded_at,
       count(l.id) AS runs,
       count(l.id) FILTER (WHERE l.at > e.at) AS late,
       max(l.at) AS last_run_at
FROM durable.events AS e
LEFT JOIN ledger AS l ON l.task_id = e.task_id AND l.step = e.label
WHERE e.kind = 'step'
GROUP BY e.task_id, e.label, e.at
ORDER BY e.task_id, e.label
"""

# Ledger rows of a step that has no recorded event (fine only for tasks that are not complete).
UNRECORDED_RUNS = """
SELECT l.task_id, l.step, count(*) AS runs FROM ledger AS l
WHERE NOT EXISTS (
    SELECT 1 FROM durable.events AS e
    WHERE e.task_id = l.task_id AND e.kind = 'step' AND e.label = l.step
)
GROUP BY l.task_id, l.step
"""

# Every ledger row of a task carries the recorded value of its first ctx.now().
STAMP_MISMATCHES = """
SELECT l.task_id, l.step, l.stamp, e.payload #>> '{}' AS recorded
FROM ledger AS l
JOIN durable.events AS e ON e.task_id = l.task_id AND e.kind = 'now'
WHERE l.stamp <> e.payload #>> '{}'
"""


@dataclass
class StepRuns:
    """How often one recorded step of one task really ran."""

    task_id: int
    label: str
    recorded_at: datetime
    runs: int
    late: int
    last_run_at: datetime | None


@dataclass
class LedgerReport:
    """The ledger compared with the recorded events."""

    steps: list[StepRuns] = field(default_factory=list)
    unrecorded: list[tuple[int, str, int]] = field(default_factory=list)
    stamp_mismatches: list[tuple[int, str, str, str]] = field(default_factory=list)

    @property
    def late(self) -> list[StepRuns]:
        """Recorded steps that ran (again) after their outcome was recorded: must be none."""
        return [s for s in self.steps if s.late]

    @property
    def never_ran(self) -> list[StepRuns]:
        """Recorded steps whose code left no ledger row: must be none."""
        return [s for s in self.steps if s.runs == 0]

    @property
    def duplicates(self) -> int:
        """Extra runs of recorded steps (all before the recording: at-least-once)."""
        return sum(max(s.runs - 1, 0) for s in self.steps)

    def labels_by_task(self) -> dict[int, set[str]]:
        """The recorded step labels of each task."""
        result: dict[int, set[str]] = {}
        for s in self.steps:
            result.setdefault(s.task_id, set()).add(s.label)
        return result


async def ledger_report(conn: asyncpg.Connection) -> LedgerReport:
    """Compare ``ledger`` with ``durable.events`` on the test database."""
    report = LedgerReport()
    for row in await conn.fetch(LEDGER_VERSUS_EVENTS):
        report.steps.append(
            StepRuns(
                row["task_id"],
                row["label"],
                row["recorded_at"],
                row["runs"],
                row["late"],
                row["last_run_at"],
            )
        )
    report.unrecorded = [tuple(r) for r in await conn.fetch(UNRECORDED_RUNS)]
    report.stamp_mismatches = [tuple(r) for r in await conn.fetch(STAMP_MISMATCHES)]
    return report


# Every task's event log and its log lines, in order: what the chaos tests check at the end.
EVENT_LOGS = """
SELECT task_id, array_agg(seq ORDER BY seq) AS seqs, array_agg(kind ORDER BY seq) AS kinds,
       array_agg(label ORDER BY seq) AS labels
FROM durable.events GROUP BY task_id
"""

TASK_LOGS = """
SELECT task_id, array_agg(line_no ORDER BY line_no) AS numbers,
       array_agg(line ORDER BY line_no) AS lines
FROM durable.logs GROUP BY task_id
"""
