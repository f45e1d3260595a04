"""Stop on SIGTERM/SIGINT: the first signal asks for a graceful stop, a second one exits at once.

Modelled on procrastinate's ``signals.on_stop``. Handlers are installed on the running event
loop, so the callback runs in the loop's thread and may touch asyncio objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterator

from durable.logs import get_logger
from durable_cli import early

log = get_logger("durable.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def on_stop(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on the first SIGTERM/SIGINT; on a second one, exit the process at once.

    Signals remembered by `durable_cli.early` before the loop ran are handled on entry.

    The immediate exit uses ``os._exit(128 + signum)``: nothing is flushed or released, exactly
    like a crash, which durable recovers from (held tasks return to pending after the lease).
    """
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def handle(signum: signal.Signals) -> None:
        if received:
            log.warning("second signal: exiting now", signal=signum.name)
            os._exit(128 + signum.value)
        received.append(signum)
        log.info("stopping gracefully; send the signal again to exit at once", signal=signum.name)
        callback()

    installed: list[signal.Signals] = []
    try:
        for signum in STOP_SIGNALS:
            try:
                loop.add_signal_handler(signum, handle, signum)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Unix/main
                continue
            installed.append(signum)
        # Signals that arrived before the loop ran (durable_cli.early) count as received now.
        for signum in early.take_pending():
            handle(signum)
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
