"""Testing and checking workflows (SPEC 11).

- `WorkflowEnvironment`: a fresh database, a real worker in process, mocked steps and a
  virtual clock, for a workflow's tests; `check_replay` runs a finished task again from every
  crash point of its history.
- `History` and `replay`: a task's recorded history, and a replay of it against the code at
  hand that performs and writes nothing (`durable export`, `durable check`).
"""

from __future__ import annotations

from durable.testing.environment import WorkflowEnvironment
from durable.testing.mocks import Call, StepMock
from durable.testing.prefixes import ReplayCheckFailed
from durable.testing.replayer import BadHistory, History, Replayed, replay

__all__ = [
    "BadHistory",
    "Call",
    "History",
    "ReplayCheckFailed",
    "Replayed",
    "StepMock",
    "WorkflowEnvironment",
    "replay",
]
