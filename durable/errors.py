"""Errors raised by durable.

The hierarchy::

    DurableError
      SerializationError          a value is not JSON-serialisable (names type and place)
      TaskFailed                  client.result(): the task ended failed
      TaskCancelled               client.result(): the task ended cancelled
      TaskNotFound                no task has this id
      ScheduleNotFound            no schedule has this name
      TaskFinished                the task is final (e.g. a notification sent to it)
      Timeout                     a wait ran out (promise, result); also a TimeoutError
      StepFailed                  inside a workflow: a step exhausted its retries
        StepResultNotSerializable a step's result is not JSON (also a SerializationError)
      NonDeterminismError         replay met another kind/label at a seq
      DeterminismViolation        workflow code read a clock, drew a random, did I/O (guard)
      PromiseRejected             a durable promise was rejected
      ContinueAsNew               raised by a workflow to restart under the same task id
      WorkflowNotFound            a reference does not name a @durable.workflow
      DatabaseUnavailable         the database cannot be reached (URL password masked)
      SchemaOutdated              the database schema is older than this code
    asyncio.CancelledError
      Cancelled                   cancellation delivered at the workflow's current await

The first paragraph of each error's docstring is its default message.
"""

from __future__ import annotations

import asyncio
from typing import Any


class DurableError(Exception):
    """A durable error."""

    def __init__(self, message: str | None = None) -> None:
        default = (self.__doc__ or "").strip().split("\n\n")[0]  # the docstring's summary
        self.message = message if message is not None else default
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class SerializationError(DurableError):
    """A value is not JSON-serialisable."""


class TaskFailed(DurableError):
    """The task ended failed."""

    def __init__(
        self,
        message: str | None = None,
        *,
        task_id: int | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback

    @classmethod
    def from_error(cls, what: str, task_id: int, error: dict[str, Any] | None) -> TaskFailed:
        """From a task's stored error (``type``, ``message``, ``traceback``); ``what`` names
        the task in the message (``"task 7"``, ``"child task 7"``)."""
        error = error or {}
        return cls(
            f"{what} failed: {error.get('type')}: {error.get('message')}",
            task_id=task_id,
            error_type=error.get("type"),
            error_message=error.get("message"),
            traceback=error.get("traceback"),
        )


class TaskCancelled(DurableError):
    """The task was cancelled."""

    def __init__(self, message: str | None = None, *, task_id: int | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class TaskNotFound(DurableError):
    """No task has this id."""


class ScheduleNotFound(DurableError):
    """No schedule has this name."""


class TaskFinished(DurableError):
    """The task is finished."""


class Timeout(DurableError, TimeoutError):
    """The wait ran out.

    Also a built-in `TimeoutError`, so code that handles timeouts generically catches it.
    """


class StepFailed(DurableError):
    """A step failed after its retries were exhausted.

    ``error_type`` is the name of the exception the step's code raised and ``message`` its
    message (``error_message`` is the same); ``str()`` of it names the step too.
    """

    # The seq of the failed step's event, when the engine raised it (`durable retry` runs the
    # steps whose failure ended a task again).
    seq: int | None = None

    def __init__(self, error_type: str, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.error_message = message
        self.step = step

    def __str__(self) -> str:
        where = f"step {self.step!r} failed: " if self.step else ""
        return f"{where}{self.error_type}: {self.message}"


class StepResultNotSerializable(StepFailed, SerializationError):
    """A step's (or transaction's) result is not JSON-serialisable.

    The step fails and is not retried (SPEC 3). It is both a `StepFailed` (the step failed;
    ``error_type`` is ``"SerializationError"``) and a `SerializationError` (naming the value's
    type and the step), so either ``except`` clause catches it, on the first run and on replay.
    A task that lets it escape ends failed with error type ``SerializationError``.
    """

    public_name = "SerializationError"

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__("SerializationError", message, step=step)


class NonDeterminismError(DurableError):
    """Replay met an effect that does not match the recorded one."""

    def __init__(self, seq: int, recorded: str, requested: str) -> None:
        super().__init__(
            f"non-deterministic workflow at seq {seq}: recorded {recorded}, "
            f"code asked for {requested}"
        )
        self.seq = seq
        self.recorded = recorded
        self.requested = requested


class DeterminismViolation(DurableError):
    """Workflow code made a call that gives another answer on replay (the guard is on).

    Raised by the determinism guard (`WorkflowEnvironment`, ``durable-worker --strict``) at
    the call: ``.call`` names it, ``.where`` is the file and line of the workflow code.
    """

    def __init__(self, call: str, where: str, advice: str) -> None:
        super().__init__(
            f"{call} in workflow code at {where}: not deterministic on replay ({advice})"
        )
        self.call = call
        self.where = where


class PromiseRejected(DurableError):
    """The durable promise was rejected."""


class ContinueAsNew(DurableError):
    """Ends this run and starts the workflow again under the same task id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("continue as new")
        self.args_ = list(args)
        self.kwargs = dict(kwargs)


class WorkflowNotFound(DurableError):
    """The reference does not name a durable workflow."""


class DatabaseUnavailable(DurableError):
    """The database cannot be reached."""


class SchemaOutdated(DurableError):
    """The database schema is older than this code: run `durable migrate`."""


class Cancelled(asyncio.CancelledError):
    """The task was cancelled; raised at the workflow's current await.

    Derives from `asyncio.CancelledError`, so `except Exception:` does not swallow it.
    """
