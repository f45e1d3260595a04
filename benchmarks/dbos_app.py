"""The DBOS side of the suite: the same workloads on DBOS Transact (PyPI `dbos`).

Runs in its own virtual environment (`pip install -r benchmarks/requirements.txt`); durable
never imports it. Two roles:

    python -m benchmarks.dbos_app run W1 --server URL --concurrency 50 [...]   # the launcher
    python -m benchmarks.dbos_app worker --url URL --concurrency 50 [...]      # a worker process

The launcher creates a fresh database, starts the worker process(es) (each `DBOS.launch()`es,
which creates DBOS's system tables, and dequeues from the queues), enqueues through
`DBOSClient` from its own process, measures, stops the workers, and prints one result line.

How the workloads map onto DBOS (the differences are printed with the results):

- Workflows and steps are plain functions (`--style sync`, the default: DBOS's primary style,
  and the faster one on this workload) or `async def` (`--style async`), on a database-backed
  queue `bench` registered with `worker_concurrency=N`: at most N workflows run at once per
  worker, like `durable-worker --concurrency N`. Each worker process has its own executor id.
- DBOS's queues are polled (`polling_interval_sec`, default 1 s); the suite sets it to
  `--poll` (default 0.01 s: 100 times more often than DBOS's default, which lowers its latency
  most and did not lower its throughput here).
- A sleeping or waiting DBOS workflow keeps running in the worker and holds its queue slot,
  so the timer workloads (W4, W6) enqueue on a queue `timers` without a concurrency limit;
  durable suspends such tasks instead.
- W5's parent enqueues its children on `bench` and awaits them the documented DBOS way
  (`handle.get_result()` one after the other; each polls at DBOS's default interval).
"""

from __future__ import annotations

import argparse
import base64
import os
import pickle
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from dbos import DBOS, DBOSClient, DBOSConfig, EnqueueOptions

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
    wait_until,
    waits_sql,
)

BENCH_QUEUE = "bench"
TIMERS_QUEUE = "timers"
LAUNCH_THREADS = 4

# -- workflows -------------------------------------------------------------------------------
# Each workflow exists in DBOS's two styles: plain functions (run on threads; DBOS's primary
# style, and the faster one here) and `async def` (`--style async`). W6 always uses async:
# 10,000 sleepers as coroutines, not 10,000 threads.


@DBOS.step(name="bench_step")
def bench_step(i: int) -> int:
    return i


@DBOS.step(name="bench_step_async")
async def bench_step_async(i: int) -> int:
    return i


@DBOS.workflow(name="one_step")
def one_step(i: int) -> int:
    return bench_step(i)


@DBOS.workflow(name="one_step_async")
async def one_step_async(i: int) -> int:
    return await bench_step_async(i)


@DBOS.workflow(name="many_steps")
def many_steps(steps: int) -> int:
    for k in range(steps):
        bench_step(k)
    return steps


@DBOS.workflow(name="many_steps_async")
async def many_steps_async(steps: int) -> int:
    for k in range(steps):
        await bench_step_async(k)
    return steps


@DBOS.workflow(name="step_then_sleep")
def step_then_sleep(seconds: float) -> float:
    bench_step(0)
    DBOS.sleep(seconds)
    return time.time()


@DBOS.workflow(name="step_then_sleep_async")
async def step_then_sleep_async(seconds: float) -> float:
    await bench_step_async(0)
    await DBOS.sleep_async(seconds)
    return time.time()


@DBOS.workflow(name="fanout")
def fanout(children: int) -> int:
    """The fan-out of DBOS's documentation: enqueue each child, then each result in turn."""
    queue = DBOS.retrieve_queue(BENCH_QUEUE)
    assert queue is not None
    handles = [queue.enqueue(one_step, i) for i in range(children)]
    return sum(handle.get_result() for handle in handles)


@DBOS.workflow(name="fanout_async")
async def fanout_async(children: int) -> int:
    queue = await DBOS.retrieve_queue_async(BENCH_QUEUE)
    assert queue is not None
    handles = [await queue.enqueue_async(one_step_async, i) for i in range(children)]
    total = 0
    for handle in handles:
        total += await handle.get_result()
    return total


@DBOS.workflow(name="sleep_once_async")
async def sleep_once_async(seconds: float) -> float:
    """One durable timer; returns the wall-clock time it woke up at."""
    await DBOS.sleep_async(seconds)
    return time.time()


# -- worker ----------------------------------------------------------------------------------


def worker_main(options: argparse.Namespace) -> None:
    config: DBOSConfig = {
        "name": "bench",
        "system_database_url": options.url,
        "application_version": "bench",
        "executor_id": options.executor_id,
        "log_level": "WARNING",
        "sys_db_pool_size": options.pool_size,
    }
    DBOS(config=config)
    DBOS.launch()
    DBOS.register_queue(
        BENCH_QUEUE,
        worker_concurrency=options.concurrency,
        polling_interval_sec=options.poll,
        on_conflict="always_update",
    )
    DBOS.register_queue(
        TIMERS_QUEUE, polling_interval_sec=options.poll, on_conflict="always_update"
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    Path(options.ready_file).write_text(str(os.getpid()))
    stopping.wait()
    DBOS.destroy(workflow_completion_timeout_sec=0)


# -- launcher --------------------------------------------------------------------------------


class Bench:
    """One workload run: a fresh database, workers, a client, a SQL connection to poll."""

    def __init__(self, options: argparse.Namespace, name: str) -> None:
        self.options = options
        self.database = name
        self.url = database_url(options.server, name)
        self.workers: list[Any] = []
        self.client: DBOSClient | None = None
        self.conn: psycopg.Connection[Any] | None = None
        self._dir = tempfile.mkdtemp(prefix="dbos-bench-")
        self._count = 0

    def fresh_database(self) -> None:
        name = self.database
        with psycopg.connect(self.options.server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

    def start_worker(self, executor_id: str) -> Any:
        self._count += 1
        ready = Path(self._dir) / f"ready-{self._count}"
        argv = [
            sys.executable, "-m", "benchmarks.dbos_app", "worker",
            "--url", self.url,
            "--concurrency", str(self.options.concurrency),
            "--poll", str(self.options.poll),
            "--executor-id", executor_id,
            "--pool-size", str(self.options.pool_size),
            "--ready-file", str(ready),
        ]  # fmt: skip
        process = spawn(argv, bench_env())
        self.workers.append(process)
        wait_until(
            lambda: ready.exists() or process.poll() is not None,
            timeout=60,
            interval=0.02,
            what="a DBOS worker to launch",
        )
        if process.poll() is not None:
            raise RuntimeError(f"the DBOS worker exited with {process.returncode}")
        return process

    def connect(self) -> None:
        self.client = DBOSClient(system_database_url=self.url)
        self.conn = psycopg.connect(self.url, autocommit=True)

    def close(self) -> None:
        for process in self.workers:
            stop(process)
        if self.client is not None:
            self.client.destroy()
        if self.conn is not None:
            self.conn.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        if not self.options.keep_database:
            with psycopg.connect(self.options.server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def scalar(self, sql: str, *params: Any) -> Any:
        assert self.conn is not None
        row = self.conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    def enqueue(
        self, workflow: str, args_list: list[tuple[Any, ...]], queue: str = BENCH_QUEUE
    ) -> list[str]:
        """Enqueue from this process (LAUNCH_THREADS at a time, as durable's launcher does)."""
        client = self.client
        assert client is not None
        options: EnqueueOptions = {"workflow_name": workflow, "queue_name": queue}

        def one(args: tuple[Any, ...]) -> str:
            return client.enqueue(options, *args).get_workflow_id()

        with ThreadPoolExecutor(LAUNCH_THREADS) as pool:
            return list(pool.map(one, args_list))

    def wait_all(
        self,
        status: str,
        n: int,
        timeout: float,
        workflow: str | None = None,
        interval: float = 0.02,
    ) -> None:
        """Until n workflows (of ``workflow``, if given) have ``status``; raise if one failed."""
        sql = (
            "SELECT count(*) FILTER (WHERE status = %s AND (%s::text IS NULL OR name = %s)),"
            " count(*) FILTER (WHERE status IN ('ERROR', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED'))"
            " FROM dbos.workflow_status"
        )

        def done() -> bool:
            assert self.conn is not None
            row = self.conn.execute(sql, (status, workflow, workflow)).fetchone()
            assert row is not None
            if row[1]:
                raise RuntimeError(f"{row[1]} DBOS workflow(s) failed")
            return int(row[0]) >= n

        wait_until(done, timeout=timeout, interval=interval, what=f"{n} workflows {status}")

    def last_update(self) -> float:
        """When the last workflow reached its final state (epoch seconds)."""
        return float(self.scalar("SELECT max(updated_at) FROM dbos.workflow_status")) / 1000


class WaitSampler:
    """What the database's backends wait on, sampled on its own connection until ``stop()``."""

    def __init__(self, b: Bench) -> None:
        self._sql = waits_sql(b.database)
        self._conn = psycopg.connect(b.url, autocommit=True)
        self._samples: list[list[str]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(WAIT_SAMPLE_INTERVAL):
            self._samples.append([row[0] for row in self._conn.execute(self._sql).fetchall()])

    def stop(self) -> dict[str, float]:
        self._stopping.set()
        self._thread.join()
        self._conn.close()
        return summarize_waits(self._samples)


def styled(options: argparse.Namespace, name: str) -> str:
    """The name of workflow ``name`` in the style chosen with ``--style``."""
    return f"{name}_async" if options.style == "async" else name


@contextmanager
def bench(options: argparse.Namespace, workload: str) -> Iterator[Bench]:
    b = Bench(options, f"bench_dbos_{workload.lower()}")
    try:
        b.fresh_database()
        yield b
    finally:
        b.close()


def throughput(options: argparse.Namespace, workload: str, n: int, steps: int) -> Result:
    """W1 (steps=1) and W2: n workflows through the queue, worker(s) already running."""
    result = Result("dbos", workload)
    with bench(options, workload) as b:
        for i in range(options.workers):
            b.start_worker(f"w{i}")
        b.connect()
        meter = CpuMeter(b.database, [w.pid for w in b.workers])
        meter.start()
        sampler = WaitSampler(b)
        started = time.time()
        if steps == 1:
            b.enqueue(styled(options, "one_step"), [(i,) for i in range(n)])
        else:
            b.enqueue(styled(options, "many_steps"), [(steps,)] * n)
        launched = time.time() - started
        b.wait_all("SUCCESS", n, timeout=options.timeout)
        cpu = meter.stop()
        waits = sampler.stop()
        elapsed = b.last_update() - started
    result.metrics["workflows_per_s"] = n / elapsed
    result.metrics["steps_per_s"] = n * steps / elapsed
    result.metrics["seconds"] = elapsed
    result.info.update(
        workflows=n, steps=steps, workers=options.workers, launch_s=launched, cpu=cpu, waits=waits
    )
    return result


def latency(options: argparse.Namespace, n: int) -> Result:
    """W3: one workflow at a time with the worker idle; enqueue to result."""
    result = Result("dbos", "W3")
    samples: list[float] = []
    with bench(options, "W3") as b:
        b.start_worker("w0")
        b.connect()
        assert b.client is not None
        options_: EnqueueOptions = {
            "workflow_name": styled(options, "one_step"),
            "queue_name": BENCH_QUEUE,
        }
        b.client.enqueue(options_, -1).get_result(polling_interval_sec=0.001)  # warm-up
        for i in range(n):
            time.sleep(random.uniform(*IDLE_GAP))
            started = time.perf_counter()
            b.client.enqueue(options_, i).get_result(polling_interval_sec=0.001)
            samples.append(time.perf_counter() - started)
    result.metrics["p50_ms"] = percentile(samples, 50) * 1000
    result.metrics["p99_ms"] = percentile(samples, 99) * 1000
    result.info.update(launches=n, result_polling_s=0.001)
    return result


def crash_recovery(options: argparse.Namespace, n: int, sleep: float) -> Result:
    """W4: n workflows (a step, then a durable sleep); SIGKILL the worker mid-way, start another.

    The kill lands at the moment durable's W4 kills its worker: once half the workflows are
    complete (a sleeping DBOS workflow stays in its worker, so the dead one held all the
    others, PENDING with its executor id). The new process has the same executor id and
    recovers them at launch. The figure: seconds from the restart until all are complete.
    """
    result = Result("dbos", "W4")
    with bench(options, "W4") as b:
        worker = b.start_worker("w0")
        b.connect()
        complete = "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'"
        started = time.time()
        b.enqueue(styled(options, "step_then_sleep"), [(sleep,)] * n, queue=TIMERS_QUEUE)
        wait_until(
            lambda: (
                b.scalar(
                    "SELECT count(*) FROM dbos.operation_outputs WHERE function_name = 'DBOS.sleep'"
                )
                >= n
            ),
            timeout=options.timeout,
            interval=0.02,
            what="every workflow to start its sleep",
        )
        all_sleeping = time.time() - started
        wait_until(
            lambda: 2 * b.scalar(complete) >= n,
            timeout=options.timeout,
            interval=0.005,
            what="half the workflows to complete",
        )
        kill(worker)
        restarted = time.time()
        complete_at_kill = b.scalar(complete)
        held = b.scalar(
            "SELECT count(*) FROM dbos.workflow_status"
            " WHERE status = 'PENDING' AND executor_id = 'w0'"
        )
        if not held:
            raise RuntimeError("the killed worker held no workflow, nothing to recover")
        b.start_worker("w0")  # the same executor id: it recovers the dead one's workflows
        ready = time.time() - restarted
        b.wait_all("SUCCESS", n, timeout=options.timeout)
        done = b.last_update()
        last_deadline = last_sleep_deadline(b)
    result.metrics["seconds_after_restart"] = done - restarted
    result.info.update(
        workflows=n,
        sleep=sleep,
        all_sleeping_after_s=all_sleeping,
        killed_after_s=restarted - started,
        kill_when="half the workflows complete",
        running_at_kill=held,
        complete_at_kill=complete_at_kill,
        new_worker_ready_s=ready,
        last_deadline_after_restart_s=last_deadline - restarted,
        recovery="a new process with the same executor id recovers PENDING workflows at launch",
    )
    return result


def last_sleep_deadline(b: Bench) -> float:
    assert b.conn is not None
    rows = b.conn.execute(
        "SELECT output FROM dbos.operation_outputs WHERE function_name = 'DBOS.sleep'"
    ).fetchall()
    return max(float(row[0]) for row in rows)


def fan_out(options: argparse.Namespace, children: int) -> Result:
    """W5: one parent enqueues `children` children and awaits them all."""
    result = Result("dbos", "W5")
    with bench(options, "W5") as b:
        b.start_worker("w0")
        b.connect()
        meter = CpuMeter(b.database, [w.pid for w in b.workers])
        meter.start()
        sampler = WaitSampler(b)
        started = time.time()
        parent = styled(options, "fanout")
        b.enqueue(parent, [(children,)])
        b.wait_all("SUCCESS", 1, timeout=options.timeout, workflow=parent)
        cpu = meter.stop()
        waits = sampler.stop()
        done = float(
            b.scalar("SELECT updated_at FROM dbos.workflow_status WHERE name = %s", parent)
        )
    result.metrics["seconds"] = done / 1000 - started
    result.info.update(
        children=children,
        result_wait="handle.get_result() in turn, default polling",
        cpu=cpu,
        waits=waits,
    )
    return result


def timers(options: argparse.Namespace, n: int, sleep: float) -> Result:
    """W6: n workflows sleeping `sleep` s; worker RSS while they wait, lateness when they wake."""
    result = Result("dbos", "W6")
    sleeps = "SELECT count(*) FROM dbos.operation_outputs WHERE function_name = 'DBOS.sleep'"
    with bench(options, "W6") as b:
        worker = b.start_worker("w0")
        b.connect()
        rss_idle = rss_mb(worker.pid)
        peak = RssSampler(worker.pid)
        started = time.time()
        b.enqueue("sleep_once_async", [(sleep,)] * n, queue=TIMERS_QUEUE)
        launched = time.time() - started
        wait_until(
            lambda: b.scalar(sleeps) >= n,
            timeout=sleep + options.timeout,
            interval=0.2,
            what="every workflow to start its sleep",
        )
        all_sleeping = time.time() - started
        rss = rss_mb(worker.pid)
        woke_early = b.scalar("SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'")
        b.wait_all("SUCCESS", n, timeout=sleep + options.timeout, interval=0.2)
        rss_peak = peak.stop()
        assert b.conn is not None
        rows = b.conn.execute(
            "SELECT w.output, o.output FROM dbos.workflow_output w"
            " JOIN dbos.operation_outputs o ON o.workflow_uuid = w.workflow_uuid"
            " WHERE o.function_name = 'DBOS.sleep'"
        ).fetchall()
    lateness = [pickle.loads(base64.b64decode(woke)) - float(deadline) for woke, deadline in rows]
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
        queue="timers (no concurrency limit: a sleeping DBOS workflow holds its slot)",
    )
    return result


def run_main(options: argparse.Namespace) -> None:
    sizes = Sizes.quick() if options.quick else Sizes()
    workloads: dict[str, Callable[[], Result]] = {
        "W1": lambda: throughput(options, "W1", sizes.w1_workflows, 1),
        "W2": lambda: throughput(options, "W2", sizes.w2_workflows, sizes.w2_steps),
        "W3": lambda: latency(options, sizes.w3_launches),
        "W4": lambda: crash_recovery(options, sizes.w4_workflows, sizes.w4_sleep),
        "W5": lambda: fan_out(options, sizes.w5_children),
        "W6": lambda: timers(options, sizes.w6_workflows, sizes.w6_sleep),
    }
    try:
        result = workloads[options.workload]()
    except Exception as error:
        log(f"dbos {options.workload}: {type(error).__name__}: {error}")
        result = Result("dbos", options.workload, error=f"{type(error).__name__}: {error}")
    result.info.update(concurrency=options.concurrency, poll_s=options.poll, style=options.style)
    result.emit()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dbos_app")
    sub = parser.add_subparsers(dest="role", required=True)
    run = sub.add_parser("run", help="run one workload and print its result")
    run.add_argument("workload", choices=["W1", "W2", "W3", "W4", "W5", "W6"])
    run.add_argument("--server", default=DEFAULT_SERVER)
    run.add_argument("--concurrency", type=int, default=50)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--poll", type=float, default=0.01)
    run.add_argument("--pool-size", type=int, default=20)
    run.add_argument("--timeout", type=float, default=300.0)
    run.add_argument("--quick", action="store_true")
    run.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    run.add_argument("--style", choices=["sync", "async"], default="sync")
    worker = sub.add_parser("worker", help="a DBOS worker process (started by `run`)")
    worker.add_argument("--url", required=True)
    worker.add_argument("--concurrency", type=int, required=True)
    worker.add_argument("--poll", type=float, required=True)
    worker.add_argument("--executor-id", default="w0")
    worker.add_argument("--pool-size", type=int, default=20)
    worker.add_argument("--ready-file", required=True)
    options = parser.parse_args()
    if options.role == "worker":
        worker_main(options)
    else:
        run_main(options)


if __name__ == "__main__":
    main()
