"""Exit codes shared by every command, and the mapping from outcomes to them.

====  =========================================================================
0     success
1     the task failed, or the thing asked for failed
2     usage error or bad input: bad JSON, unknown id, unreachable database,
      schema too old
3     the task was cancelled
124   a ``--timeout`` ran out
130   interrupted (Ctrl-C)
====  =========================================================================
"""

from __future__ import annotations

import enum

import click

import durable


class ExitCode(enum.IntEnum):
    """The process exit codes of ``durable`` and ``durable-worker``."""

    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    CANCELLED = 3
    TIMEOUT = 124
    INTERRUPTED = 130


# Most specific first: the first matching type wins.
_ERROR_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (durable.TaskNotFound, ExitCode.BAD_INPUT),
    (durable.ScheduleNotFound, ExitCode.BAD_INPUT),
    (durable.DatabaseUnavailable, ExitCode.BAD_INPUT),
    (durable.SchemaOutdated, ExitCode.BAD_INPUT),
    (durable.SerializationError, ExitCode.BAD_INPUT),
    (durable.WorkflowNotFound, ExitCode.BAD_INPUT),
    (durable.Timeout, ExitCode.TIMEOUT),
    (durable.TaskCancelled, ExitCode.CANCELLED),
    (durable.TaskFailed, ExitCode.FAILED),
    (click.UsageError, ExitCode.BAD_INPUT),
    (KeyboardInterrupt, ExitCode.INTERRUPTED),
    (click.Abort, ExitCode.INTERRUPTED),
)

_STATE_CODES: dict[durable.TaskState, ExitCode] = {
    durable.TaskState.COMPLETE: ExitCode.OK,
    durable.TaskState.FAILED: ExitCode.FAILED,
    durable.TaskState.CANCELLED: ExitCode.CANCELLED,
}


def for_exception(error: BaseException) -> ExitCode:
    """The exit code for an error that ends a command.

    Unknown ids, an unreachable database, an outdated schema and values that are not JSON are
    bad input (2); a timeout is 124; every other `durable.DurableError` is a failure (1).
    """
    if isinstance(error, click.ClickException) and not isinstance(error, click.UsageError):
        return ExitCode(error.exit_code) if error.exit_code in _VALUES else ExitCode.FAILED
    for error_type, code in _ERROR_CODES:
        if isinstance(error, error_type):
            return code
    return ExitCode.FAILED


def for_state(state: durable.TaskState | str) -> ExitCode:
    """The exit code for a task's final state: complete 0, failed 1, cancelled 3.

    A state that is not final (the command stopped following early) counts as success.
    """
    return _STATE_CODES.get(durable.TaskState(state), ExitCode.OK)


class CommandFailed(click.ClickException):
    """The command could not do what was asked: a one-line reason and exit code 1."""

    exit_code = ExitCode.FAILED


_VALUES = frozenset(int(code) for code in ExitCode)
