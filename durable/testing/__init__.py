"""Testing and checking workflows (SPEC 11).

- `WorkflowEnvironment`: a fresh database, a real worker in process, mocked steps and a
  virtual clock, for a workflow's tests.
- `History` and `replay`: a task's recorded history, and a replay of it against the code at
  hand that performs and writes nothing (`durable export`, `durable check`).
"""

from __future__ import annotations

from durable.testing.replayer import BadHistory, History, Replayed, replay

__all__ = ["BadHistory", "History", "Replayed", "replay"]
