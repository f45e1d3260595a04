"""The ``durable-worker`` entry point: catch SIGTERM/SIGINT before anything slow happens.

Importing durable, asyncpg and uvloop takes a few hundred milliseconds, and a supervisor may
send SIGTERM at any time, e.g. right after a start it regrets. Until the worker's event loop
installs its handlers (`durable_cli.signals.on_stop`), the default action would kill the
process, or SIGINT would raise KeyboardInterrupt in the middle of an import. So this module
imports nothing but `signal`, and the console script starts here: a signal that arrives
early is remembered and delivered to `on_stop` once the loop runs, which then stops
gracefully (before connecting, if it has not yet).
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import NoReturn

EARLY_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# Signals received before the event loop took over, in order.
pending: list[signal.Signals] = []


def _remember(signum: int, _frame: FrameType | None) -> None:
    pending.append(signal.Signals(signum))


def catch_stop_signals() -> None:
    """Remember SIGTERM/SIGINT in `pending` instead of dying (until `on_stop` takes over)."""
    for signum in EARLY_SIGNALS:
        signal.signal(signum, _remember)


def take_pending() -> list[signal.Signals]:
    """The signals received early, once: later calls return only newer ones."""
    taken = list(pending)
    del pending[: len(taken)]
    return taken


def worker_main() -> NoReturn:
    """Entry point of the ``durable-worker`` console script."""
    catch_stop_signals()
    from durable_cli.worker import main

    main()
