"""Prometheus metrics: what workers count as they go, and gauges read from the database.

Two kinds of figures, both named ``durable_*``:

- *Counted by a worker process* as things happen: claims, step runs and their duration,
  launch-to-start latency, suspensions, finished tasks, takeovers, slots in use. The worker
  calls the functions below at the points where these happen; each is a no-op until
  `enable` is called (``durable-worker --metrics-port``, or an application embedding a
  `durable.Worker` that wants them), so a worker that is not scraped pays one flag check.
- *Read from the database at scrape time* (`scrape`): unfinished tasks by state and queue,
  and the age of the oldest pending task of each queue. Cheap SQL over partial and
  ``(state, id)`` indexes (``durable.store.queries.LIVE_TASK_COUNTS``), so a scrape costs
  the size of the backlog, not of the history. They are the same on every scraped process.

`serve_metrics` serves ``GET /metrics`` from a bare asyncio server, so a worker needs no web
framework to be scraped; ``durable serve`` mounts `scrape` in its own app.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from durable.errors import DurableError

if TYPE_CHECKING:
    from durable.store.records import ClaimedTask
    from durable.store.store import Store

T = TypeVar("T")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: from sub-millisecond in-process steps to the multi-minute HTTP calls steps make.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

REGISTRY = CollectorRegistry(auto_describe=True)

CLAIMS = Counter("durable_claims", "Tasks claimed by this process.", registry=REGISTRY)
STEPS = Counter(
    "durable_steps",
    "Step attempts run by this process, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
STEP_SECONDS = Histogram(
    "durable_step_duration_seconds",
    "Time a step attempt's code ran.",
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
START_LATENCY = Histogram(
    "durable_launch_to_start_seconds",
    "From a task's launch to its first claim.",
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
SUSPENSIONS = Counter(
    "durable_suspensions", "Runs that ended suspended (timer, promise, child).", registry=REGISTRY
)
FINISHED = Counter(
    "durable_tasks_finished",
    "Tasks this process ended, by final state.",
    ["state"],
    registry=REGISTRY,
)
TAKEOVERS = Counter(
    "durable_takeovers",
    "Tasks taken back from dead workers by this process (resumed or abandoned).",
    registry=REGISTRY,
)
SLOTS_IN_USE = Gauge(
    "durable_worker_slots_in_use", "Tasks this process runs now.", registry=REGISTRY
)

_enabled = False


def enable() -> None:
    """Start counting in this process (idempotent)."""
    global _enabled
    _enabled = True


def claimed(batch: Sequence[ClaimedTask]) -> None:
    """A worker claimed ``batch``; first claims also give the launch-to-start latency."""
    if not _enabled or not batch:
        return
    CLAIMS.inc(len(batch))
    now = datetime.now(UTC)
    for task in batch:
        if task.attempts == 1 and task.created_at is not None:
            START_LATENCY.observe(max(0.0, (now - task.created_at).total_seconds()))


def timed_step(step: Awaitable[T]) -> Awaitable[T]:
    """``step`` (one attempt of a step's code), timed and counted when enabled."""
    return _timed(step) if _enabled else step


async def _timed(step: Awaitable[T]) -> T:
    started = time.perf_counter()
    outcome = "failed"
    try:
        result = await step
        outcome = "complete"
        return result
    finally:
        STEP_SECONDS.observe(time.perf_counter() - started)
        STEPS.labels(outcome).inc()


def run_ended(state: str) -> None:
    """A run ended ``suspended`` or in a final state (``continued`` runs count as neither)."""
    if not _enabled:
        return
    if state == "suspended":
        SUSPENSIONS.inc()
    elif state in ("complete", "failed", "cancelled"):
        FINISHED.labels(state).inc()


def took_over(resumed: int, abandoned: int) -> None:
    """A takeover round returned ``resumed`` tasks to pending and abandoned others."""
    if _enabled and (resumed or abandoned):
        TAKEOVERS.inc(resumed + abandoned)


def slots_in_use(running: int) -> None:
    """The worker now runs ``running`` tasks."""
    if _enabled:
        SLOTS_IN_USE.set(running)


class _DatabaseGauges:
    """A one-shot collector for the figures read at scrape time."""

    def __init__(self, counts: Iterable[tuple[str, str, int]], ages: dict[str, float]) -> None:
        self.counts = list(counts)
        self.ages = ages

    def collect(self) -> Iterable[Any]:
        tasks = GaugeMetricFamily(
            "durable_tasks",
            "Unfinished tasks by state and queue (read from the database).",
            labels=["state", "queue"],
        )
        for state, queue, count in self.counts:
            tasks.add_metric([state, queue], count)
        oldest = GaugeMetricFamily(
            "durable_oldest_pending_age_seconds",
            "Seconds the oldest pending task of each queue has waited (read from the database).",
            labels=["queue"],
        )
        for queue, age in self.ages.items():
            oldest.add_metric([queue], age)
        yield tasks
        yield oldest


async def scrape(store: Store) -> bytes:
    """The Prometheus text of the database gauges, and of this process's counters once
    `enable` was called."""
    database = CollectorRegistry(auto_describe=False)
    database.register(_DatabaseGauges(await store.live_task_counts(), await store.oldest_pending()))
    # A process that counts nothing (durable serve) shows only the database's figures, not
    # a page of zeros that would read as an idle fleet.
    counted = generate_latest(REGISTRY) if _enabled else b""
    return counted + generate_latest(database)


async def serve_metrics(store: Store, host: str, port: int) -> asyncio.Server:
    """Serve ``GET /metrics`` on ``host:port`` (a minimal HTTP/1.1 server; one request per
    connection). Anything else gets 404."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if method != "GET" or path.split("?", 1)[0] != "/metrics":
                status, body = "404 Not Found", b"not found\n"
            else:
                try:
                    status, body = "200 OK", await scrape(store)
                except DurableError as error:  # the database is down: say so, stay up
                    status, body = "503 Service Unavailable", f"{error}\n".encode()
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
            pass  # a client that went away or spoke no HTTP: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port)
