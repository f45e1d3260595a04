"""durable: durable execution for Python async workflows, on PostgreSQL alone.

Write a workflow as an ``async def`` decorated with ``@durable.workflow``; every effect it
performs through its ``Context`` is recorded in Postgres, and after any crash the workflow is
replayed from its event log and runs to completion without redoing what was done.
"""

from __future__ import annotations

from durable.client import Client
from durable.context import Context
from durable.errors import (
    Cancelled,
    ContinueAsNew,
    DatabaseUnavailable,
    DeterminismViolation,
    DurableError,
    NonDeterminismError,
    PromiseRejected,
    ScheduleNotFound,
    SchemaOutdated,
    SerializationError,
    StepFailed,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskNotFound,
    Timeout,
    WorkflowNotFound,
)
from durable.models import (
    Debounce,
    Event,
    EventKind,
    LogLine,
    Notification,
    PromiseState,
    QueueInfo,
    ScheduleInfo,
    TaskHandle,
    TaskInfo,
    TaskState,
    WorkerInfo,
)
from durable.retry import RetryPolicy
from durable.worker.settings import WorkerSettings
from durable.worker.worker import Worker
from durable.workflow import Workflow, step, transaction, workflow

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
    "Client",
    "Context",
    "ContinueAsNew",
    "DatabaseUnavailable",
    "Debounce",
    "DeterminismViolation",
    "DurableError",
    "Event",
    "EventKind",
    "LogLine",
    "NonDeterminismError",
    "Notification",
    "PromiseRejected",
    "PromiseState",
    "QueueInfo",
    "RetryPolicy",
    "ScheduleInfo",
    "ScheduleNotFound",
    "SchemaOutdated",
    "SerializationError",
    "StepFailed",
    "TaskCancelled",
    "TaskFailed",
    "TaskFinished",
    "TaskHandle",
    "TaskInfo",
    "TaskNotFound",
    "TaskState",
    "Timeout",
    "Worker",
    "WorkerInfo",
    "WorkerSettings",
    "Workflow",
    "WorkflowNotFound",
    "__version__",
    "step",
    "transaction",
    "workflow",
]
