"""The durable side of the suite: one workload, launched from this process, run by workers.

    python -m benchmarks.durable_app W1 --server URL --concurrency 50 [--workers 1] [--quick]

Creates a fresh database (`DROP DATABASE ... WITH (FORCE)`, `CREATE DATABASE`, migrate),
starts `durable-worker` process(es) (`python -m durable_cli.worker`, cwd = the repository,
`--log-level warning`), launches through `durable.Client` from this process, measures, stops
the workers and prints one result line (see `benchmarks.common.Result`). The workflows are in
`benchmarks/workflows.py`. `python -m benchmarks.run` runs this for every workload.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

import durable
from benchmarks.common import (
    DEFAULT_SERVER,
    IDLE_GAP,
    WAIT_SAMPLE_INTERVAL,
    CpuMeter,
    Result,
    RssSampler,
    Sizes,
    bench_env,
    database_url,
    kill,
    log,
    percentile,
    rss_mb,
    spawn,
    stop,
    summarize_waits,
    waits_sql,
)

WORKFLOWS = "benchmarks.workflows"
LAUNCHERS = 4  # concurrent launches: the client's pool has 4 connections


class Bench:
    """One workload run: a fresh database, workers, a client, a SQL connection to poll."""

    def __init__(self, options: argparse.Namespace, name: str) -> None:
        self.options = options
        self.database = name
        self.url = database_url(options.server, name)
        self.workers: list[Any] = []
        self.client = durable.Client(self.url)
        self.conn: asyncpg.Connection | None = None

    async def fresh_database(self) -> None:
        name = self.database
        conn = await asyncpg.connect(self.options.server)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        await durable.Client(self.url, check_schema=False).migrate()
        self.conn = await asyncpg.connect(self.url)
        await self.client.connect()

    async def start_worker(self, *extra: str) -> Any:
        """Start one more worker; return once it has registered."""
        argv = [
            sys.executable, "-m", "durable_cli.worker",
            "--database-url", self.url,
            "--concurrency", str(self.options.concurrency),
            "--log-level", "warning",
            *extra,
        ]  # fmt: skip
        process = spawn(argv, bench_env())
        self.workers.append(process)
        deadline = time.monotonic() + 60
        while not await self.scalar(
            "SELECT count(*) FROM durable.workers WHERE pid = $1", process.pid
        ):
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("the worker did not register within 60 s")
            await asyncio.sleep(0.02)
        return process

    async def close(self) -> None:
        for process in self.workers:
            stop(process)
        await self.client.close()
        if self.conn is not None:
            await self.conn.close()
        if not self.options.keep_database:
            conn = await asyncpg.connect(self.options.server)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await conn.close()

    async def scalar(self, sql: str, *args: Any) -> Any:
        assert self.conn is not None
        return await self.conn.fetchval(sql, *args)

    async def launch(
        self, workflow: str, args_list: Sequence[Sequence[Any]], keys: int = 0
    ) -> list[int]:
        """Launch one task per argument list, LAUNCHERS at a time; their ids in order.

        With ``keys``, task i gets the concurrency key ``k<i % keys>`` (W1 --flow keys).
        """
        ids: list[int] = [0] * len(args_list)
        cursor = iter(range(len(args_list)))

        async def launcher() -> None:
            for i in cursor:
                key = f"k{i % keys}" if keys else None
                task = await self.client.launch(
                    f"{WORKFLOWS}:{workflow}", args=args_list[i], concurrency_key=key
                )
                ids[i] = task.id

        await asyncio.gather(*(launcher() for _ in range(LAUNCHERS)))
        return ids

    async def wait_all(self, n: int, timeout: float, interval: float = 0.02) -> None:
        """Until n tasks are complete (TimeoutError after ``timeout``; RuntimeError on failure)."""
        deadline = time.monotonic() + timeout
        while True:
            counts = dict(
                await self.conn_fetch("SELECT state, count(*) FROM durable.tasks GROUP BY state")
            )
            if counts.get("failed") or counts.get("cancelled"):
                raise RuntimeError(f"tasks failed: {counts}")
            if counts.get("complete", 0) >= n:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all {n} tasks complete after {timeout:.0f} s: {counts}")
            await asyncio.sleep(interval)

    async def conn_fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        assert self.conn is not None
        return [tuple(row) for row in await self.conn.fetch(sql, *args)]

    async def last_finish(self) -> float:
        """When the last task finished (epoch seconds, the server's clock: this machine's)."""
        value = await self.scalar("SELECT extract(epoch FROM max(finished_at)) FROM durable.tasks")
        return float(value)


# W1 --flow keys: tasks are spread over this many concurrency keys.
FLOW_KEYS = 100


async def sample_waits(b: Bench) -> dict[str, float]:
    """What the database's backends wait on, sampled until cancelled (on its own connection)."""
    conn = await asyncpg.connect(b.url)
    samples: list[list[str]] = []
    try:
        while True:
            samples.append([row[0] for row in await conn.fetch(waits_sql(b.database))])
            await asyncio.sleep(WAIT_SAMPLE_INTERVAL)
    except asyncio.CancelledError:
        return summarize_waits(samples)
    finally:
        await conn.close()


@asynccontextmanager
async def bench(options: argparse.Namespace, workload: str) -> AsyncIterator[Bench]:
    b = Bench(options, f"bench_durable_{workload.lower()}")
    try:
        await b.fresh_database()
        yield b
    finally:
        await b.close()


async def throughput(options: argparse.Namespace, workload: str, n: int, steps: int) -> Result:
    """W1 (steps=1) and W2: n tasks launched with the worker(s) already running."""
    result = Result("durable", workload)
    async with bench(options, workload) as b:
        # W1 with flow control (SPEC 12): a fleet-wide cap of 50, or one task at a time per
        # key over FLOW_KEYS keys. "none" is the queue without limits (the plain claim).
        keys = 0
        if options.flow == "concurrency":
            await b.client.configure_queue("default", concurrency=50)
        elif options.flow == "keys":
            await b.client.configure_queue("default", key_concurrency=1)
            keys = FLOW_KEYS
        for _ in range(options.workers):
            await b.start_worker()
        meter = CpuMeter(b.database, [w.pid for w in b.workers])
        meter.start()
        sampler = asyncio.create_task(sample_waits(b))
        started = time.time()
        if steps == 1:
            await b.launch("one_step", [[i] for i in range(n)], keys)
        else:
            await b.launch("many_steps", [[steps]] * n)
        launched = time.time() - started
        await b.wait_all(n, options.timeout)
        cpu = meter.stop()
        sampler.cancel()
        waits = await sampler
        elapsed = await b.last_finish() - started
    result.metrics["workflows_per_s"] = n / elapsed
    result.metrics["steps_per_s"] = n * steps / elapsed
    result.metrics["seconds"] = elapsed
    result.info.update(
        workflows=n,
        steps=steps,
        workers=options.workers,
        launch_s=launched,
        cpu=cpu,
        waits=waits,
        flow=options.flow,
    )
    return result


async def latency(options: argparse.Namespace, n: int) -> Result:
    """W3: one task at a time with the worker idle; launch to result (`client.result`)."""
    result = Result("durable", "W3")
    samples: list[float] = []
    async with bench(options, "W3") as b:
        await b.start_worker()
        workflow = f"{WORKFLOWS}:one_step"
        await b.client.result((await b.client.launch(workflow, args=[-1])).id, timeout=30)
        for i in range(n):
            await asyncio.sleep(random.uniform(*IDLE_GAP))
            started = time.perf_counter()
            task = await b.client.launch(workflow, args=[i])
            await b.client.result(task.id, timeout=30)
            samples.append(time.perf_counter() - started)
    result.metrics["p50_ms"] = percentile(samples, 50) * 1000
    result.metrics["p99_ms"] = percentile(samples, 99) * 1000
    result.info.update(launches=n, result_wait="client.result (LISTEN/NOTIFY)")
    return result


STATES = "SELECT state, count(*) FROM durable.tasks GROUP BY state"


async def half_complete_and_held(b: Bench, n: int, deadline: float) -> None:
    """W4: until half the tasks are complete and a worker holds some of the others."""
    while True:
        counts = dict(await b.conn_fetch(STATES))
        if 2 * counts.get("complete", 0) >= n and counts.get("running", 0):
            return
        if counts.get("complete", 0) >= n or time.monotonic() > deadline:
            raise RuntimeError(f"no moment to kill the worker while it held tasks: {counts}")
        await asyncio.sleep(0.005)


async def wait_all_noting_takeover(b: Bench, n: int, dead_worker: str, timeout: float) -> float:
    """W4: `Bench.wait_all`; returns when the dead worker's lease was found expired (epoch s)."""
    taken_over_at = None
    deadline = time.monotonic() + timeout
    while True:
        if taken_over_at is None and not await b.scalar(
            "SELECT count(*) FROM durable.workers WHERE id = $1", dead_worker
        ):
            taken_over_at = time.time()  # its row goes with the takeover, in one statement
        counts = dict(await b.conn_fetch(STATES))
        if counts.get("failed") or counts.get("cancelled"):
            raise RuntimeError(f"tasks failed: {counts}")
        if counts.get("complete", 0) >= n and taken_over_at is not None:
            return taken_over_at
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all {n} tasks complete after {timeout:.0f} s: {counts}")
        await asyncio.sleep(0.02)


async def crash_recovery(options: argparse.Namespace, n: int, sleep: float) -> Result:
    """W4: n tasks (a step, then a durable sleep); SIGKILL the worker mid-way, start another.

    A sleep longer than the worker's ``suspend_after`` (2 s) suspends the task as soon as it is
    recorded: no worker holds it until its timer is due, when a worker claims it (0.1 s early),
    waits out the rest in memory and completes it. So a worker holds a task only from its claim
    to its suspension (a few ms) and from its wake-up to its end. The kill lands in the second
    window, once half the tasks are complete and while the worker holds others (state
    'running' with its worker_id). Those wait out the lease timeout; then the new worker takes
    them over and, their deadlines being past, completes them at once. The rest, still
    suspended, need no takeover. If the dead worker held no task the run is invalid (an error):
    its figure would not involve a takeover.

    The figure: seconds from the restart until every task is complete (target: the lease
    timeout + 2 s). The dead worker's last heartbeat was ``heartbeat_age_at_kill_s`` old at the
    kill, so its lease expires ``lease_timeout - heartbeat_age_at_kill_s`` after the restart;
    the new worker checks for expired leases every heartbeat (1 s).
    """
    result = Result("durable", "W4")
    lease = ["--lease-timeout", str(options.lease_timeout), "--heartbeat-interval", "1"]
    async with bench(options, "W4") as b:
        worker = await b.start_worker(*lease)
        worker_id = await b.scalar("SELECT id FROM durable.workers WHERE pid = $1", worker.pid)
        started = time.time()
        await b.launch("step_then_sleep", [[sleep]] * n)
        deadline = time.monotonic() + options.timeout
        while await b.scalar("SELECT count(*) FROM durable.events WHERE kind = 'sleep'") < n:
            if time.monotonic() > deadline:
                raise TimeoutError("not every task started its sleep")
            await asyncio.sleep(0.02)
        all_sleeping = time.time() - started
        await half_complete_and_held(b, n, deadline)
        kill(worker)
        restarted = time.time()
        b.workers.remove(worker)
        # Until its lease expires, nothing but a write in flight at the kill changes the dead
        # worker's tasks.
        at_kill = dict(await b.conn_fetch(STATES))
        held = await b.scalar(
            "SELECT count(*) FROM durable.tasks WHERE state = 'running' AND worker_id = $1",
            worker_id,
        )
        heartbeat_age = await b.scalar(
            "SELECT extract(epoch FROM now() - heartbeat_at)::float8 FROM durable.workers"
            " WHERE id = $1",
            worker_id,
        )
        if not held:
            raise RuntimeError(f"the killed worker held no task, nothing to take over: {at_kill}")
        await b.start_worker(*lease)
        ready = time.time() - restarted
        taken_over_at = await wait_all_noting_takeover(b, n, worker_id, options.timeout)
        done = await b.last_finish()
        last_deadline = await b.scalar(
            "SELECT extract(epoch FROM max((payload->>'until')::timestamptz))"
            " FROM durable.events WHERE kind = 'sleep'"
        )
        [(taken_over, taken_over_done)] = await b.conn_fetch(
            "SELECT count(*), extract(epoch FROM max(finished_at))::float8 FROM durable.tasks"
            " WHERE losses > 0"
        )
    if not taken_over:  # a write in flight at the kill may still commit: held is an upper bound
        raise RuntimeError(f"no task was taken over ({held} held at the kill)")
    result.metrics["seconds_after_restart"] = done - restarted
    result.info.update(
        workflows=n,
        sleep=sleep,
        lease_timeout=options.lease_timeout,
        heartbeat_interval=1.0,
        all_sleeping_after_s=all_sleeping,
        killed_after_s=restarted - started,
        kill_when="half the tasks complete, the worker holding some of the others",
        running_at_kill=held,
        complete_at_kill=at_kill.get("complete", 0),
        suspended_at_kill=at_kill.get("suspended", 0),
        heartbeat_age_at_kill_s=heartbeat_age,
        lease_expires_after_restart_s=options.lease_timeout - heartbeat_age,
        new_worker_ready_s=ready,
        taken_over=taken_over,
        taken_over_after_restart_s=taken_over_at - restarted,
        taken_over_done_after_restart_s=taken_over_done - restarted,
        last_deadline_after_restart_s=float(last_deadline) - restarted,
    )
    return result


async def fan_out(options: argparse.Namespace, children: int) -> Result:
    """W5: one parent starts `children` child tasks and awaits them all."""
    result = Result("durable", "W5")
    async with bench(options, "W5") as b:
        await b.start_worker()
        meter = CpuMeter(b.database, [w.pid for w in b.workers])
        meter.start()
        sampler = asyncio.create_task(sample_waits(b))
        started = time.time()
        [parent] = await b.launch("fanout", [[children]])
        total = await b.client.result(parent, timeout=options.timeout)
        cpu = meter.stop()
        sampler.cancel()
        waits = await sampler
        assert total == sum(range(children)), total
        finished = await b.scalar(
            "SELECT extract(epoch FROM finished_at) FROM durable.tasks WHERE id = $1", parent
        )
    result.metrics["seconds"] = float(finished) - started
    result.info.update(children=children, cpu=cpu, waits=waits)
    return result


async def timers(options: argparse.Namespace, n: int, sleep: float) -> Result:
    """W6: n tasks on `sleep` s timers: worker RSS while they wait, lateness when they fire."""
    result = Result("durable", "W6")
    async with bench(options, "W6") as b:
        worker = await b.start_worker()
        rss_idle = rss_mb(worker.pid)
        peak = RssSampler(worker.pid)
        started = time.time()
        await b.launch("sleep_once", [[sleep]] * n)
        launched = time.time() - started
        deadline = time.monotonic() + sleep + options.timeout
        while await b.scalar("SELECT count(*) FROM durable.events WHERE kind = 'sleep'") < n:
            if time.monotonic() > deadline:
                raise TimeoutError("not every task started its sleep")
            await asyncio.sleep(0.2)
        all_sleeping = time.time() - started
        rss = rss_mb(worker.pid)
        woke_early = await b.scalar("SELECT count(*) FROM durable.tasks WHERE state = 'complete'")
        await b.wait_all(n, sleep + options.timeout, interval=0.2)
        rss_peak = peak.stop()
        rows = await b.conn_fetch("SELECT result FROM durable.tasks")
    lateness = [float(json.loads(row[0])) for row in rows]
    result.metrics["rss_mb"] = rss
    result.metrics["rss_peak_mb"] = rss_peak
    result.metrics["lateness_p50_ms"] = percentile(lateness, 50) * 1000
    result.metrics["lateness_p99_ms"] = percentile(lateness, 99) * 1000
    result.metrics["lateness_max_ms"] = max(lateness) * 1000
    result.info.update(
        workflows=n,
        sleep=sleep,
        rss_idle_mb=rss_idle,
        launch_s=launched,
        all_sleeping_after_s=all_sleeping,
        complete_when_all_slept=woke_early,
    )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.durable_app")
    parser.add_argument("workload", choices=["W1", "W2", "W3", "W4", "W5", "W6"])
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--lease-timeout", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--flow",
        choices=["none", "concurrency", "keys"],
        default="none",
        help="W1 with a queue cap of 50, or key_concurrency=1 over 100 keys",
    )
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    options = parser.parse_args()
    sizes = Sizes.quick() if options.quick else Sizes()
    workloads: dict[str, Callable[[], Awaitable[Result]]] = {
        "W1": lambda: throughput(options, "W1", sizes.w1_workflows, 1),
        "W2": lambda: throughput(options, "W2", sizes.w2_workflows, sizes.w2_steps),
        "W3": lambda: latency(options, sizes.w3_launches),
        "W4": lambda: crash_recovery(options, sizes.w4_workflows, sizes.w4_sleep),
        "W5": lambda: fan_out(options, sizes.w5_children),
        "W6": lambda: timers(options, sizes.w6_workflows, sizes.w6_sleep),
    }
    try:
        async with asyncio.timeout(options.timeout + 120):
            result = await workloads[options.workload]()
    except Exception as error:
        log(f"durable {options.workload}: {type(error).__name__}: {error}")
        result = Result("durable", options.workload, error=f"{type(error).__name__}: {error}")
    result.info.update(concurrency=options.concurrency)
    result.emit()


if __name__ == "__main__":
    asyncio.run(main())
