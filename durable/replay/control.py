"""Private control-flow signals of the engine.

They derive from BaseException so that a workflow's ``except Exception:`` cannot swallow them
(the same choice as Temporal's eviction error and DBOS's base exception).
"""

from __future__ import annotations

from datetime import datetime


class ControlSignal(BaseException):
    """Base of the engine's internal signals."""


class LeaseLost(ControlSignal):
    """This worker no longer holds the task; stop without writing anything."""


class Suspend(ControlSignal):
    """Stop running the workflow now; resume it by replay at ``wake_at`` (or when woken)."""

    def __init__(self, wake_at: datetime | None) -> None:
        super().__init__(wake_at)
        self.wake_at = wake_at
