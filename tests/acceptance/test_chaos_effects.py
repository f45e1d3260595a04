"""SPEC 7 under chaos, for the effects other than plain steps: workers killed at random.

Three ``durable-worker`` processes run a few dozen tasks of `chaos_effects_workflows` while
the test, for ``CHAOS_SECONDS``, kills a random worker with SIGKILL at random moments and starts
a replacement at once (three stay alive, every kill lands on work in flight). Meanwhile, on a
schedule drawn from ``random.Random(SEED)``, the test launches the tasks and acts on them from
outside:

- `family` parents start children (``ctx.start`` under ``asyncio.gather``, then ``ctx.call``)
  and await them; some children fail, and the parent records the ``durable.TaskFailed`` it got;
- `awaiter` tasks wait on durable promises that the test resolves (``client.resolve``, some
  promises several times with different values) and that `resolver` tasks resolve
  (``ctx.resolve``), racing each other;
- `mailbox` tasks receive notifications that the test sends (``client.notify``) one by one;
- `transfer` tasks insert one row each in a table of the durable database with
  ``ctx.transaction``;
- `cancellable` tasks wait (a long sleep, a promise nobody completes, or a sleep with a child
  waiting forever) until the test cancels them (``client.cancel``); their
  ``async with ctx.cleanup():`` block runs a step and prints a line.

Then the fleet drains, and the test checks from outside (SPEC 7):

- every task is final: complete, ``cancelled`` for the cancelled ones and their children,
  ``failed`` for the children meant to fail; nothing is left pending, running or suspended;
- every result is the expected one: the parents' children outcomes (failures as TaskFailed),
  every awaiter, resolver and client resolution got the promise's single winner, each mailbox
  received its notifications in the order they were sent, each transaction saw one row;
- each transaction's row was committed exactly once (7.2);
- no step's code ran after its outcome was recorded, every recorded step ran, and each
  cancelled task's cleanup step ran and was recorded after the cancellation landed (7.1);
- every printed line is in its task's log exactly once, in order (7.3); every child was
  launched once; event logs are the workflows' effects with no gap in their numbering.

The plan (tasks, values, when each action happens) and the kill rhythm come from ``SEED``
(printed; ``DURABLE_CHAOS_SEED`` overrides it), so a failing run can be replayed with the same
schedule; what the kills hit still depends on timing, and the assertions do not.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

import durable
from tests.acceptance import chaos_effects_workflows as wf
from tests.acceptance.chaos_workflows import EVENT_LOGS, TASK_LOGS, LedgerReport, ledger_report
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import follow_until

pytestmark = pytest.mark.chaos

SEED = int(os.environ.get("DURABLE_CHAOS_SEED", "20261124"))
WORKERS = 3
WORKER_ARGS = ("--concurrency", "20", "--max-attempts", "1000")
CHAOS_SECONDS = 16.0  # workers are killed until then
ACTIONS_UNTIL = 14.0  # every launch, resolution, notification and cancellation is planned before
KILL_PAUSE = (0.3, 1.2)  # between a replacement being up and the next kill
DRAIN_SECONDS = 30.0

FAMILIES = 5
TRANSFERS = 8
PROMISE_GROUPS = 4
MAILBOXES = 4
CANCEL_MODES = ("sleep", "sleep", "promise", "promise", "child", "child", "naps", "naps")

TASKS = "SELECT id, name, workflow, state, parent_id, result, error, attempts FROM durable.tasks"

# When each cancelled task's cleanup step ran (ledger) and when its cancellation landed (event).
CLEANUPS = """
SELECT l.task_id, l.at AS ran_at, c.at AS cancel_at, c.seq AS cancel_seq, s.seq AS cleanup_seq
FROM ledger AS l
JOIN durable.events AS c ON c.task_id = l.task_id AND c.kind = 'cancel'
JOIN durable.events AS s ON s.task_id = l.task_id AND s.kind = 'step' AND s.label = 'cleanup'
WHERE l.step = 'cleanup'
"""


# -- the plan -------------------------------------------------------------------------------


@dataclass
class Family:
    at: float
    gathered: list[list[Any]]  # [n, fail, pause] per child
    called: list[Any]


@dataclass
class Transfer:
    at: float
    amount: int
    pause: float


@dataclass
class PromiseGroup:
    promise_id: str
    awaiters: list[float]  # launch times
    resolvers: list[tuple[float, str, float]]  # launch time, value, pause before resolving
    resolutions: list[tuple[float, str]]  # client.resolve time, value


@dataclass
class Mailbox:
    at: float
    sends: list[float]  # times of the notifications, in order


@dataclass
class Cancellation:
    at: float
    mode: str
    pause: float  # after the task printed "waiting"


@dataclass
class Plan:
    families: list[Family] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    groups: list[PromiseGroup] = field(default_factory=list)
    mailboxes: list[Mailbox] = field(default_factory=list)
    cancellations: list[Cancellation] = field(default_factory=list)


def make_plan(rng: random.Random) -> Plan:
    """What the test does and when (seconds from the start), drawn from the seed."""
    plan = Plan()

    def launch_time() -> float:
        return round(rng.uniform(0.0, ACTIONS_UNTIL * 0.6), 3)

    def pause(low: float = 0.1, high: float = 1.0) -> float:
        return round(rng.uniform(low, high), 3)

    n = 0
    for index in range(FAMILIES):
        gathered = []
        for _ in range(rng.randint(2, 3)):
            n += 1
            gathered.append([n, rng.random() < 0.3, pause()])
        n += 1
        called = [n, rng.random() < 0.4, pause()]
        if index == 0:  # at least one failure of each kind
            gathered[0][1], called[1] = True, True
        plan.families.append(Family(launch_time(), gathered, called))
    for index in range(TRANSFERS):
        plan.transfers.append(Transfer(launch_time(), index + 1, pause(0.1, 0.8)))
    for g in range(PROMISE_GROUPS):
        pid = f"group-{g}"
        awaiters = [launch_time() for _ in range(rng.randint(2, 3))]
        resolvers = [
            (launch_time(), f"{pid}/workflow-{j}", pause()) for j in range(rng.randint(0, 2))
        ]
        times = sorted(rng.uniform(1.0, ACTIONS_UNTIL) for _ in range(rng.randint(0, 2)))
        resolutions = [(round(t, 3), f"{pid}/client-{j}") for j, t in enumerate(times)]
        if not resolvers and not resolutions:
            resolutions = [(round(rng.uniform(1.0, ACTIONS_UNTIL), 3), f"{pid}/client-0")]
        plan.groups.append(PromiseGroup(pid, awaiters, resolvers, resolutions))
    for _ in range(MAILBOXES):
        at = launch_time()
        sends = sorted(round(rng.uniform(at, ACTIONS_UNTIL), 3) for _ in range(rng.randint(3, 4)))
        plan.mailboxes.append(Mailbox(at, sends))
    for mode in CANCEL_MODES:
        plan.cancellations.append(Cancellation(launch_time(), mode, pause(0.0, 1.5)))
    return plan


# -- what happened --------------------------------------------------------------------------


@dataclass
class Record:
    """What the test launched and did, by task id."""

    families: dict[int, Family] = field(default_factory=dict)
    transfers: dict[int, Transfer] = field(default_factory=dict)
    awaiters: dict[int, str] = field(default_factory=dict)  # task -> promise id
    resolvers: dict[int, tuple[str, str]] = field(default_factory=dict)  # task -> (pid, value)
    resolved: list[tuple[str, str, Any]] = field(default_factory=list)  # (pid, offered, won)
    mailboxes: dict[int, list[list[Any]]] = field(default_factory=dict)  # task -> sent
    cancelled: dict[int, str] = field(default_factory=dict)  # task -> mode
    cancel_states: Counter[str] = field(default_factory=Counter)

    def top_level(self) -> set[int]:
        return {
            *self.families,
            *self.transfers,
            *self.awaiters,
            *self.resolvers,
            *self.mailboxes,
            *self.cancelled,
        }


class Chaos:
    """The fleet, the killer and the scripted actions of one run."""

    def __init__(
        self,
        db_url: str,
        client: durable.Client,
        workers: Callable[..., WorkerProcess],
        fleet: list[WorkerProcess],
    ) -> None:
        self.db_url = db_url
        self.client = client
        self.workers = workers
        self.fleet = fleet
        self.began = time.monotonic()
        self.kills = 0
        self.record = Record()

    async def at(self, offset: float) -> None:
        """The schedule: until ``offset`` seconds after the start (chaos rhythm, not a wait)."""
        await asyncio.sleep(max(0.0, self.began + offset - time.monotonic()))

    async def kill_until(self, rng: random.Random, seconds: float) -> None:
        """SIGKILL a random worker at random moments and replace it at once, until ``seconds``."""
        while time.monotonic() - self.began < seconds:
            await asyncio.sleep(rng.uniform(*KILL_PAUSE))  # the kill schedule's rhythm
            index = rng.randrange(len(self.fleet))
            victim = self.fleet[index]
            victim.signal(signal.SIGKILL)
            assert await victim.wait() == -signal.SIGKILL
            self.kills += 1
            self.fleet[index] = await self.workers(*WORKER_ARGS).start()

    async def launch(self, offset: float, workflow: Any, name: str, *args: Any) -> int:
        await self.at(offset)
        handle = await self.client.launch(workflow, name=name, args=[self.db_url, *args])
        return handle.id

    async def family(self, plan: Family, index: int) -> None:
        task = await self.launch(plan.at, wf.family, f"family {index}", plan.gathered, plan.called)
        self.record.families[task] = plan

    async def transfer(self, plan: Transfer) -> None:
        task = await self.launch(
            plan.at, wf.transfer, f"transfer {plan.amount}", plan.amount, plan.pause
        )
        self.record.transfers[task] = plan

    async def awaiter(self, pid: str, at: float, index: int) -> None:
        task = await self.launch(at, wf.awaiter, f"awaiter {pid} {index}", pid)
        self.record.awaiters[task] = pid

    async def resolver(self, pid: str, at: float, value: str, pause: float) -> None:
        task = await self.launch(at, wf.resolver, f"resolver {value}", pid, value, pause)
        self.record.resolvers[task] = (pid, value)

    async def resolution(self, pid: str, at: float, value: str) -> None:
        await self.at(at)
        won = await self.client.resolve(pid, value)
        self.record.resolved.append((pid, value, won))

    async def mailbox(self, plan: Mailbox, index: int) -> None:
        task = await self.launch(plan.at, wf.mailbox, f"mailbox {index}", len(plan.sends))
        sent: list[list[Any]] = []
        self.record.mailboxes[task] = sent
        for number, offset in enumerate(plan.sends):
            await self.at(offset)
            await self.client.notify(task, f"n{number}", [index, number])
            sent.append([f"n{number}", [index, number]])

    async def cancellation(self, plan: Cancellation, index: int) -> None:
        task = await self.launch(plan.at, wf.cancellable, f"cancellable {index}", plan.mode)
        await follow_until(self.client, task, "waiting")  # it has reached its wait
        await asyncio.sleep(plan.pause)  # where in the wait the cancellation lands: chaos
        state = await self.client.cancel(task)
        self.record.cancelled[task] = plan.mode
        self.record.cancel_states[str(state)] += 1

    def scripts(self, plan: Plan) -> list[Awaitable[None]]:
        scripts: list[Awaitable[None]] = []
        scripts += [self.family(f, i) for i, f in enumerate(plan.families)]
        scripts += [self.transfer(t) for t in plan.transfers]
        for group in plan.groups:
            pid = group.promise_id
            scripts += [self.awaiter(pid, at, i) for i, at in enumerate(group.awaiters)]
            scripts += [self.resolver(pid, *r) for r in group.resolvers]
            scripts += [self.resolution(pid, *r) for r in group.resolutions]
        scripts += [self.mailbox(m, i) for i, m in enumerate(plan.mailboxes)]
        scripts += [self.cancellation(c, i) for i, c in enumerate(plan.cancellations)]
        return scripts


async def test_effects_survive_random_worker_kills(
    db_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    plan = make_plan(random.Random(SEED))
    print(f"\nchaos effects: seed {SEED}, {WORKERS} workers, kills for {CHAOS_SECONDS} s")
    observer = await asyncpg.connect(db_url, server_settings={"application_name": "chaos-test"})
    try:
        await observer.execute(wf.LEDGER_DDL)
        await observer.execute(wf.TX_DDL)
        fleet = list(await asyncio.gather(*(workers(*WORKER_ARGS).start() for _ in range(WORKERS))))
        async with durable.Client(db_url) as client:
            chaos = Chaos(db_url, client, workers, fleet)
            killer = asyncio.ensure_future(chaos.kill_until(random.Random(SEED + 1), CHAOS_SECONDS))
            try:
                async with asyncio.timeout(CHAOS_SECONDS + DRAIN_SECONDS):
                    await asyncio.gather(*chaos.scripts(plan))
            finally:
                if not killer.done():
                    await asyncio.wait_for(killer, CHAOS_SECONDS + 30)
            chaos_seconds = time.monotonic() - chaos.began

            drain_began = time.monotonic()
            await _drain(client, observer)
            drain_seconds = time.monotonic() - drain_began

            record = chaos.record
            tasks = {row["id"]: row for row in await observer.fetch(TASKS)}
            report = await ledger_report(observer)
            attempts = Counter(row["attempts"] for row in tasks.values())
            resumed = sum(n for a, n in attempts.items() if a > 1)
            print(
                f"chaos effects: {len(tasks)} tasks ({len(record.top_level())} launched by the"
                f" test), {chaos.kills} kills in {chaos_seconds:.1f} s; drained in"
                f" {drain_seconds:.1f} s; {resumed} tasks resumed (attempts:"
                f" {dict(sorted(attempts.items()))}); states right after cancel:"
                f" {dict(record.cancel_states)}; {sum(s.runs for s in report.steps)} step runs"
                f" for {len(report.steps)} recorded steps; {time.monotonic() - chaos.began:.1f} s"
                " in all"
            )

            expected = Expectations(record, tasks, await _winners(client, record))
            _check_states(tasks, expected)
            _check_results(tasks, expected)
            await _check_transactions(observer, record)
            await _check_ledger(observer, report, expected)
            await _check_logs(observer, expected)
            await _check_events(observer, expected)

            assert chaos.kills >= 5, f"only {chaos.kills} kills"
            assert resumed > 0, "no task was ever resumed after a kill"
            assert all(w.process is not None and w.process.returncode is None for w in chaos.fleet)
    finally:
        await observer.close()


async def _drain(client: durable.Client, observer: asyncpg.Connection) -> None:
    """Wait until every task (children included) is final, within DRAIN_SECONDS in all."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        rows = await observer.fetch(
            "SELECT id FROM durable.tasks WHERE state NOT IN ('complete', 'failed', 'cancelled')"
        )
        if not rows:
            return
        for row in rows:  # a parent ends after its children: one more pass finds none left
            try:
                await client.wait(row["id"], timeout=max(deadline - time.monotonic(), 0.1))
            except durable.Timeout:
                states = await observer.fetch(
                    "SELECT state, workflow, count(*) FROM durable.tasks"
                    " GROUP BY state, workflow ORDER BY state, workflow"
                )
                pytest.fail(
                    f"tasks still not final after {DRAIN_SECONDS} s: "
                    + str([tuple(r) for r in states])
                )


async def _winners(client: durable.Client, record: Record) -> dict[str, Any]:
    """Each promise's winning value, read back once everything is over."""
    pids = {*record.awaiters.values(), *(pid for pid, _ in record.resolvers.values())}
    winners = {}
    for pid in sorted(pids | {pid for pid, _, _ in record.resolved}):
        state = await client.peek(pid)
        assert state.state == "resolved", f"promise {pid} ended {state}"
        winners[pid] = state.value
    return winners


@dataclass
class Expected:
    """What one task must end as."""

    kind: str
    state: str
    result: Any = None
    lines: list[str] | None = None  # None: any prefix of `prefix_of` (a child cancelled early)
    prefix_of: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)  # recorded step labels, in seq order
    events: list[tuple[str, str]] | None = None  # (kind, label) in seq order, if known


class Expectations:
    """What every task must end as, from what the test did and the promises' winners."""

    def __init__(
        self, record: Record, tasks: dict[int, asyncpg.Record], winners: dict[str, Any]
    ) -> None:
        self.record = record
        self.winners = winners
        self.children: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for task_id, row in tasks.items():
            if row["parent_id"] is not None:
                self.children[row["parent_id"]][row["name"]].append(task_id)
        self.tasks: dict[int, Expected] = {}
        self.wrong_children: dict[int, Any] = {}
        for task_id, family in record.families.items():
            self.family(task_id, family)
        for task_id, transfer in record.transfers.items():
            self.tasks[task_id] = Expected(
                "transfer",
                "complete",
                transfer.amount,
                wf.transfer_lines(transfer.amount),
                steps=wf.TRANSFER_STEPS,
                events=wf.transfer_events(),
            )
        for task_id, pid in record.awaiters.items():
            self.tasks[task_id] = Expected(
                "awaiter",
                "complete",
                winners[pid],
                wf.awaiter_lines(pid, winners[pid]),
                steps=wf.AWAITER_STEPS,
                events=wf.awaiter_events(pid),
            )
        for task_id, (pid, _) in record.resolvers.items():
            self.tasks[task_id] = Expected(
                "resolver",
                "complete",
                winners[pid],
                wf.resolver_lines(pid, winners[pid]),
                steps=wf.RESOLVER_STEPS,
                events=wf.resolver_events(pid),
            )
        for task_id, sent in record.mailboxes.items():
            self.tasks[task_id] = Expected(
                "mailbox",
                "complete",
                sent,
                wf.mailbox_lines([event for event, _ in sent]),
                steps=wf.mailbox_steps(len(sent)),
                events=wf.mailbox_events(len(sent)),
            )
        for task_id, mode in record.cancelled.items():
            self.cancelled(task_id, mode)

    def family(self, task_id: int, family: Family) -> None:
        members = [*family.gathered, family.called]
        names = {f"child {n}": (n, fail) for n, fail, _ in members}
        launched = self.children[task_id]
        if launched.keys() != names.keys() or any(len(ids) != 1 for ids in launched.values()):
            self.wrong_children[task_id] = dict(launched)
            return
        ids = [launched[f"child {n}"][0] for n, _, _ in members]
        self.tasks[task_id] = Expected(
            "family",
            "complete",
            {
                "gathered": [wf.child_result(n, fail) for n, fail, _ in family.gathered],
                "called": wf.child_result(*family.called[:2]),
            },
            wf.FAMILY_LINES,
            steps=wf.FAMILY_STEPS,
            events=wf.family_events(ids[:-1], ids[-1]),
        )
        for child_id, (n, fail, _) in zip(ids, members, strict=True):
            self.tasks[child_id] = Expected(
                "child",
                "failed" if fail else "complete",
                None if fail else n * n,
                wf.child_lines(n, fail),
                steps=wf.CHILD_STEPS,
                events=wf.CHILD_EVENTS,
            )

    def cancelled(self, task_id: int, mode: str) -> None:
        # Its events are checked on their own: whether the wait it was cancelled in left a
        # record depends on where the cancellation landed.
        self.tasks[task_id] = Expected(
            "cancellable", "cancelled", lines=wf.CANCELLABLE_LINES, steps=wf.CANCELLABLE_STEPS
        )
        launched = self.children[task_id]
        if launched.keys() != ({"orphan"} if mode == "child" else set()) or any(
            len(ids) != 1 for ids in launched.values()
        ):
            self.wrong_children[task_id] = dict(launched)
        for ids in launched.values():
            for child_id in ids:
                self.tasks[child_id] = Expected("orphan", "cancelled", prefix_of=wf.ORPHAN_LINES)


def _check_states(tasks: dict[int, asyncpg.Record], expected: Expectations) -> None:
    assert not expected.wrong_children, (
        f"children launched twice or not at all: {expected.wrong_children}"
    )
    exp = expected.tasks
    assert set(tasks) == set(exp), (
        f"tasks nobody launched: {sorted(set(tasks) - set(exp))};"
        f" launched but missing: {sorted(set(exp) - set(tasks))}"
    )
    wrong = {
        i: (exp[i].kind, row["name"], row["state"], row["error"])
        for i, row in tasks.items()
        if row["state"] != exp[i].state
    }
    assert not wrong, f"{len(wrong)} tasks ended in the wrong state: {wrong}"


def _check_results(tasks: dict[int, asyncpg.Record], expected: Expectations) -> None:
    wrong = {}
    for task_id, row in tasks.items():
        exp = expected.tasks[task_id]
        result = json.loads(row["result"]) if row["result"] is not None else None
        if exp.state == "complete" and result != exp.result:
            wrong[task_id] = (exp.kind, result, exp.result)
        if exp.kind == "child" and exp.state == "failed":
            error = json.loads(row["error"])
            if (error.get("type"), error.get("message")) != ("ValueError", f"{row['name']} fails"):
                wrong[task_id] = (exp.kind, error)
    assert not wrong, f"{len(wrong)} tasks returned something else: {wrong}"
    # Every completer from outside got the winner too (SPEC 7.5); it is one of the offers.
    record, winners = expected.record, expected.winners
    disagree = [(pid, offered, won) for pid, offered, won in record.resolved if won != winners[pid]]
    assert not disagree, f"client.resolve returned another value than the winner: {disagree}"
    offered: dict[str, set[str]] = defaultdict(set)
    for pid, value, _ in record.resolved:
        offered[pid].add(value)
    for pid, value in record.resolvers.values():
        offered[pid].add(value)
    strange = {pid: won for pid, won in winners.items() if won not in offered[pid]}
    assert not strange, f"promises won by a value nobody offered: {strange}"


async def _check_transactions(observer: asyncpg.Connection, record: Record) -> None:
    rows = await observer.fetch("SELECT task_id, count(*) AS n FROM tx_rows GROUP BY task_id")
    counts = {row["task_id"]: row["n"] for row in rows}
    assert counts == dict.fromkeys(record.transfers, 1), (
        f"transaction rows per task (SPEC 7.2: exactly one each): {counts}"
    )


async def _check_ledger(
    observer: asyncpg.Connection, report: LedgerReport, expected: Expectations
) -> None:
    late = [(s.task_id, s.label, s.recorded_at, s.last_run_at, s.late) for s in report.late]
    assert not late, f"steps ran after their outcome was recorded (SPEC 7.1): {late}"
    never = [(s.task_id, s.label) for s in report.never_ran]
    assert not never, f"recorded steps whose code never ran: {never}"
    assert not report.unrecorded, f"steps ran but were never recorded: {report.unrecorded}"
    assert not report.stamp_mismatches, f"ctx.now() not replayed: {report.stamp_mismatches}"
    labels = report.labels_by_task()
    missing = {
        i: (e.kind, sorted(labels.get(i, set())), e.steps)
        for i, e in expected.tasks.items()
        if labels.get(i, set()) != set(e.steps)
    }
    assert not missing, f"tasks whose recorded steps differ from the workflow's: {missing}"
    # Each cancelled task's cleanup step ran (at least once), and after its cancellation landed.
    cleanups: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for row in await observer.fetch(CLEANUPS):
        cleanups[row["task_id"]].append(row)
    cancelled = [i for i, e in expected.tasks.items() if e.kind == "cancellable"]
    missing_cleanup = [i for i in cancelled if not cleanups.get(i)]
    assert not missing_cleanup, f"cancelled tasks whose cleanup step never ran: {missing_cleanup}"
    misplaced = [
        (i, r["cancel_seq"], r["cleanup_seq"], r["cancel_at"], r["ran_at"])
        for i in cancelled
        for r in cleanups[i]
        if not (r["cancel_seq"] < r["cleanup_seq"] and r["cancel_at"] <= r["ran_at"])
    ]
    assert not misplaced, f"cleanup steps that ran before the cancellation landed: {misplaced}"


async def _check_logs(observer: asyncpg.Connection, expected: Expectations) -> None:
    logs = {row["task_id"]: row for row in await observer.fetch(TASK_LOGS)}
    wrong: dict[int, Any] = {}
    for task_id, exp in expected.tasks.items():
        row = logs.get(task_id)
        lines = [] if row is None else list(row["lines"])
        numbers = [] if row is None else list(row["numbers"])
        if numbers != list(range(len(lines))):
            wrong[task_id] = (exp.kind, numbers, lines)
        elif exp.lines is not None and lines != exp.lines:
            wrong[task_id] = (exp.kind, lines, exp.lines)
        elif exp.lines is None and lines != exp.prefix_of[: len(lines)]:
            wrong[task_id] = (exp.kind, lines, exp.prefix_of)
    assert not wrong, f"{len(wrong)} task logs are not each line once, in order: {wrong}"


async def _check_events(observer: asyncpg.Connection, expected: Expectations) -> None:
    logs = {row["task_id"]: row for row in await observer.fetch(EVENT_LOGS)}
    wrong: dict[int, Any] = {}
    for task_id, exp in expected.tasks.items():
        row = logs.get(task_id)
        seqs = [] if row is None else list(row["seqs"])
        events = [] if row is None else list(zip(row["kinds"], row["labels"], strict=True))
        if exp.events is not None:
            if seqs != list(range(len(events))) or events != exp.events:
                wrong[task_id] = (exp.kind, seqs, events, exp.events)
        elif exp.kind == "cancellable":
            mode = expected.record.cancelled[task_id]
            base, wait = wf.cancellable_events(task_id, mode)
            waits = len(events) - len([e for e in events if e != wait])
            position = len(base) - 2  # the waits come right before the cancellation
            shaped = events[:position] + events[position + waits :] == base and all(
                e == wait for e in events[position : position + waits]
            )
            # Only the last wait, cut short by the cancellation, may have left no record.
            numbered = seqs in (list(range(len(events))), [*range(len(events) - 2), *seqs[-2:]])
            gap = seqs != list(range(len(events)))
            if not shaped or not numbered or seqs[-1] != seqs[-2] + 1:
                wrong[task_id] = (exp.kind, mode, seqs, events)
            elif gap and seqs[-2] != len(events) - 1:
                wrong[task_id] = (exp.kind, mode, seqs, events)
            elif (mode == "naps" and waits + gap < 1) or (mode != "naps" and waits + gap != 1):
                wrong[task_id] = (exp.kind, mode, seqs, events)
        elif not {kind for kind, _ in events} <= {"promise", "cancel"}:  # an orphan
            wrong[task_id] = (exp.kind, seqs, events)
    assert not wrong, f"{len(wrong)} event logs differ from the workflows' effects: {wrong}"
