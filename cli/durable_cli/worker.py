"""``durable-worker``: run a `durable.Worker` on uvloop until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NoReturn

import click

import durable
import durable.logs
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


@click.command(
    "durable-worker", cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option("--migrate", "migrate_first", is_flag=True, help="Upgrade the schema first.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=100,
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
    help="Import this module at start, e.g. to register workflows (repeatable).",
)
@click.option(
    "--allow-module",
    "allow_modules",
    multiple=True,
    metavar="PREFIX",
    help="Only import workflows from modules under this prefix (repeatable).",
)
@click.option(
    "--heartbeat-interval",
    type=_SECONDS,
    default=5.0,
    show_default=True,
    help="Seconds between heartbeats.",
)
@click.option(
    "--lease-timeout",
    type=_SECONDS,
    default=30.0,
    show_default=True,
    help="Seconds without heartbeat after which a worker's tasks are resumed elsewhere.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Claims lost to crashed workers after which a task ends failed.",
)
@click.option(
    "--shutdown-grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds running effects get to finish on SIGTERM/SIGINT.",
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
    log_format: str,
    log_level: str,
    database_url: str | None,
) -> int:
    """Run a durable worker until SIGTERM/SIGINT.

    Workflows are imported on demand from the directory the worker was started in. The first
    signal stops claiming, gives running effects --shutdown-grace seconds and hands the rest
    back to other workers; a second signal exits at once.
    """
    if lease_timeout <= heartbeat_interval:
        raise click.BadParameter(
            f"{lease_timeout:g} s must be longer than --heartbeat-interval "
            f"({heartbeat_interval:g} s): every worker would be declared dead between two of "
            "its own heartbeats",
            param_hint="--lease-timeout",
        )
    _put_cwd_first()
    durable.logs.configure("json" if log_format == "json" else "console", log_level.lower())
    for module in imports:
        _import(module)
    settings: dict[str, Any] = {
        "concurrency": concurrency,
        "queues": list(queues) or ["default"],
        "heartbeat_interval": heartbeat_interval,
        "lease_timeout": lease_timeout,
        "max_attempts": max_attempts,
        "shutdown_grace": shutdown_grace,
        "allow_modules": list(allow_modules),
    }
    return run(serve(database_url or None, migrate_first, settings))


async def serve(database_url: str | None, migrate_first: bool, settings: dict[str, Any]) -> int:
    """Migrate if asked, run the worker, stop it gracefully on the first signal."""
    concurrency = int(settings["concurrency"])
    executor = StepExecutor(max_workers=max(8, min(concurrency, 256)))
    asyncio.get_running_loop().set_default_executor(executor)
    stop = asyncio.Event()
    with on_stop(stop.set):
        if migrate_first:
            await durable.Client(database_url, check_schema=False).migrate()
            durable.logs.get_logger("durable.worker").info("schema at head")
        if stop.is_set():
            return 0
        worker = durable.Worker(database_url, **settings)
        await worker.start()
        try:
            # A signal, or the worker stopping itself because one of its loops failed.
            signalled = asyncio.ensure_future(stop.wait())
            stopped = asyncio.ensure_future(worker.wait())
            await asyncio.wait([signalled, stopped], return_when=asyncio.FIRST_COMPLETED)
            signalled.cancel()
            stopped.cancel()
        finally:
            await asyncio.shield(worker.stop())
    if worker.error is not None:
        raise CommandFailed(f"the worker stopped after an internal error: {worker.error!r}")
    _exit_now_if_steps_still_run(executor)
    return 0


def _put_cwd_first() -> None:
    """Import from the directory the worker was started in, as ``python -m`` does."""
    cwd = os.getcwd()
    if not sys.path or sys.path[0] != cwd:
        sys.path.insert(0, cwd)


def _import(module: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as error:
        raise click.BadParameter(
            f"cannot import {module!r}: {type(error).__name__}: {error}", param_hint="--import"
        ) from None


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
