"""``durable-worker``: run a `durable.Worker` on uvloop until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import click

import durable
import durable.config
import durable.logs
import durable.metrics
from durable_cli.exit_codes import CommandFailed
from durable_cli.main import GuardedCommand
from durable_cli.options import DATABASE_URL_HELP
from durable_cli.session import run
from durable_cli.signals import on_stop

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
STEP_THREADS = "durable-step"  # the name prefix of the threads synchronous steps run in


class StepExecutor(ThreadPoolExecutor):
    """The threads synchronous steps run in, counting the calls still running."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=STEP_THREADS)
        self._lock = threading.Lock()
        self._busy = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self._busy += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._one_done)
        return future

    def _one_done(self, _future: Future[Any]) -> None:
        with self._lock:
            self._busy -= 1

    @property
    def busy(self) -> int:
        """Calls submitted and not finished (running, or queued for a thread)."""
        with self._lock:
            return self._busy


_SECONDS = click.FloatRange(min=0, min_open=True)
_DEFAULTS = durable.WorkerSettings()
CONNECT_TIMEOUT = 60.0  # seconds durable-worker keeps trying to reach the database at start
FIRST_RETRY = 0.5  # seconds before the second attempt; doubled after each failure ...
MAX_RETRY = 10.0  # ... up to this


@click.command(
    "durable-worker", cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option("--migrate", "migrate_first", is_flag=True, help="Upgrade the schema first.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=_DEFAULTS.concurrency,
    show_default=True,
    help="Tasks run at once.",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="Q",
    help="Queue to claim from (repeatable) [default: default].",
)
@click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    help="Import this module at start, e.g. to register workflows; tasks may name it (repeatable).",
)
@click.option(
    "--allow-module",
    "allow_modules",
    multiple=True,
    metavar="PREFIX",
    help="Also import workflows from modules under this prefix, wherever they are installed "
    "(repeatable) [default: only modules under the directory the worker starts in].",
)
@click.option(
    "--heartbeat-interval",
    type=_SECONDS,
    default=_DEFAULTS.heartbeat_interval,
    show_default=True,
    help="Seconds between heartbeats.",
)
@click.option(
    "--lease-timeout",
    type=_SECONDS,
    default=_DEFAULTS.lease_timeout,
    show_default=True,
    help="Seconds without heartbeat after which a worker's tasks are resumed elsewhere.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=_DEFAULTS.max_attempts,
    show_default=True,
    help="Claims lost to crashed workers after which a task ends failed.",
)
@click.option(
    "--shutdown-grace",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.shutdown_grace,
    show_default=True,
    help="Seconds running effects get to finish on SIGTERM/SIGINT.",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0),
    default=CONNECT_TIMEOUT,
    show_default=True,
    help="Seconds to keep trying to reach the database at start, with backoff; 0: fail at once.",
)
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    help="Log format (logs go to stderr).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Lowest level logged.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Determinism guard: workflow code that reads a clock, draws a random, sleeps with "
    "asyncio or opens a file or socket outside a step raises durable.DeterminismViolation.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (see --metrics-host).",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address of --metrics-port."
)
@click.option("--database-url", metavar="URL", default=None, help=DATABASE_URL_HELP)
@click.version_option(durable.__version__, prog_name="durable-worker")
def worker(
    migrate_first: bool,
    concurrency: int,
    queues: tuple[str, ...],
    imports: tuple[str, ...],
    allow_modules: tuple[str, ...],
    heartbeat_interval: float,
    lease_timeout: float,
    max_attempts: int,
    shutdown_grace: float,
    connect_timeout: float,
    log_format: str,
    log_level: str,
    strict: bool,
    metrics_port: int | None,
    metrics_host: str,
    database_url: str | None,
) -> int:
    """Run a durable worker until SIGTERM/SIGINT.

    Workflows are imported on demand from the directory the worker was started in (modules
    elsewhere only with --import or --allow-module). The first signal stops claiming, gives
    running effects --shutdown-grace seconds and hands the rest back to other workers; a
    second signal exits at once. A database that cannot be reached at start is retried with
    backoff for --connect-timeout seconds.
    """
    try:
        settings = durable.WorkerSettings(
            concurrency=concurrency,
            queues=queues,
            heartbeat_interval=heartbeat_interval,
            lease_timeout=lease_timeout,
            max_attempts=max_attempts,
            shutdown_grace=shutdown_grace,
            imports=imports,
            allow_modules=allow_modules,
            app_dir=Path.cwd(),
            strict=strict,
        )
    except (ValueError, TypeError) as error:
        raise click.UsageError(_as_flags(str(error))) from None
    _put_cwd_first()
    durable.logs.configure("json" if log_format == "json" else "console", log_level.lower())
    metrics_at = None if metrics_port is None else (metrics_host, metrics_port)
    if metrics_at is not None:
        durable.metrics.enable()  # before the first claim, so that it counts
    return run(serve(database_url or None, migrate_first, settings, connect_timeout, metrics_at))


def _as_flags(message: str) -> str:
    """A `WorkerSettings` error in the words of the command line (``--lease-timeout``)."""
    for name in durable.WorkerSettings.__dataclass_fields__:
        flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
        message = re.sub(rf"\b{name}\b", flag, message)
    return message


# Settings whose flag is not the setting's name with dashes (repeatable flags are singular).
_FLAGS = {"queues": "--queue", "imports": "--import", "allow_modules": "--allow-module"}


async def serve(
    database_url: str | None,
    migrate_first: bool,
    settings: durable.WorkerSettings,
    connect_timeout: float = CONNECT_TIMEOUT,
    metrics_at: tuple[str, int] | None = None,
) -> int:
    """Migrate if asked, run the worker, stop it gracefully on the first signal."""
    executor = StepExecutor(max_workers=max(8, min(settings.concurrency, 256)))
    asyncio.get_running_loop().set_default_executor(executor)
    stop = asyncio.Event()
    with on_stop(stop.set):
        # A malformed URL is no outage: refuse it at once rather than retry it.
        durable.config.check_database_url(durable.config.configured_database_url(database_url))
        starter = _Starter(database_url, migrate_first, settings)
        worker = await _until_started(starter, stop, connect_timeout)
        if worker is None:
            return 0  # signalled before the worker ran: nothing claimed, nothing to hand over
        exporter = await _export_metrics(database_url, metrics_at)
        try:
            # A signal, or the worker stopping itself because one of its loops failed.
            signalled = asyncio.ensure_future(stop.wait())
            stopped = asyncio.ensure_future(worker.wait())
            await asyncio.wait([signalled, stopped], return_when=asyncio.FIRST_COMPLETED)
            signalled.cancel()
            stopped.cancel()
        finally:
            await asyncio.shield(worker.stop())
            if exporter is not None:
                await exporter.aclose()
    if worker.error is not None:
        raise CommandFailed(f"the worker stopped after an internal error: {worker.error!r}")
    _exit_now_if_steps_still_run(executor)
    return 0


async def _export_metrics(
    database_url: str | None, where: tuple[str, int] | None
) -> contextlib.AsyncExitStack | None:
    """Serve /metrics at ``where`` (counting starts at once); None when not asked for."""
    if where is None:
        return None
    stack = contextlib.AsyncExitStack()
    client = await stack.enter_async_context(durable.Client(database_url))
    server = await durable.metrics.serve_metrics(client.store, *where)
    stack.callback(server.close)
    port = server.sockets[0].getsockname()[1]
    durable.logs.get_logger("durable.worker").info(
        "metrics served", url=f"http://{where[0]}:{port}/metrics"
    )
    return stack


class _Starter:
    """One attempt at migrating (once, if asked) and starting a worker."""

    def __init__(
        self, database_url: str | None, migrate_first: bool, settings: durable.WorkerSettings
    ) -> None:
        self.database_url = database_url
        self.migrate_first = migrate_first
        self.settings = settings

    async def __call__(self) -> durable.Worker:
        if self.migrate_first:
            await durable.Client(self.database_url, check_schema=False).migrate()
            durable.logs.get_logger("durable.worker").info("schema at head")
            self.migrate_first = False
        # A fresh Worker per attempt: one whose start failed is not reused.
        worker = durable.Worker(self.database_url, settings=self.settings)
        await worker.start()
        return worker


async def _until_started(
    start: Callable[[], Awaitable[durable.Worker]], stop: asyncio.Event, timeout: float
) -> durable.Worker | None:
    """Start a worker, retrying with backoff while the database is unavailable.

    Under a supervisor, exiting at once when the database is down (being restarted, not up
    yet) would be a crash loop. Each failed attempt is logged once; after ``timeout`` seconds
    the last error ends the command (exit 2). None if ``stop`` was set first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = FIRST_RETRY
    log = durable.logs.get_logger("durable.worker")
    for attempt in itertools.count(1):
        started = asyncio.ensure_future(start())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([started, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not started.done():
            started.cancel()
            with contextlib.suppress(asyncio.CancelledError, durable.DurableError):
                await started
            return None
        try:
            return started.result()
        except durable.DatabaseUnavailable as error:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise durable.DatabaseUnavailable(
                    f"{error} (gave up after {attempt} attempt{'s' if attempt > 1 else ''}; "
                    "see --connect-timeout)"
                ) from None
            wait = min(delay, remaining)
            log.warning(
                "database unavailable; retrying",
                attempt=attempt,
                retry_in=round(wait, 2),
                error=str(error),
            )
            delay = min(delay * 2, MAX_RETRY)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                return None
    raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends


def _put_cwd_first() -> None:
    """Import from the directory the worker was started in, as ``python -m`` does."""
    cwd = os.getcwd()
    if not sys.path or sys.path[0] != cwd:
        sys.path.insert(0, cwd)


def main() -> NoReturn:
    """Entry point of the ``durable-worker`` console script."""
    worker.main(prog_name="durable-worker")
    raise SystemExit(0)  # pragma: no cover - main() always exits


def _exit_now_if_steps_still_run(executor: StepExecutor) -> None:
    """Exit at once (status 0) if synchronous steps still block their threads.

    The worker has stopped: it released their tasks to other workers and deregistered.
    Leaving normally would wait for those threads (the event loop's shutdown joins its
    executor), keeping the process alive for as long as a blocking step takes while its task
    may already run elsewhere. Abandoning them is what a crash would do, and steps are
    at-least-once for exactly that case.
    """
    if not executor.busy:
        return
    log = durable.logs.get_logger("durable.worker")
    log.warning("exiting without waiting for steps still blocking their threads")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
