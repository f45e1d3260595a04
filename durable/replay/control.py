"""Private control-flow signals of the engine.

They derive from BaseException so that a workflow's ``except Exception:`` cannot swallow them
(the same choice as Temporal's eviction error and DBOS's base exception).
"""

from __future__ import annotations


class ControlSignal(BaseException):
    """Base of the engine's internal signals."""


class LeaseLost(ControlSignal):
    """This worker no longer holds the task; stop without writing anything."""
