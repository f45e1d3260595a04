"""The public namespace is exactly what SPEC names (plus a few documented extras), pinned."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path

import pytest

import durable

PACKAGE = Path(durable.__file__).parent


def test_all_is_sorted_and_complete() -> None:
    assert durable.__all__ == sorted(durable.__all__)
    for name in durable.__all__:
        assert hasattr(durable, name), name


def test_spec_names_are_exported() -> None:
    for name in [
        "workflow", "step", "Context", "Client", "Worker", "RetryPolicy", "TaskState",
        "TaskInfo", "TaskHandle", "PromiseState", "Notification", "DurableError",
        "SerializationError", "StepFailed", "NonDeterminismError", "TaskFailed",
        "TaskCancelled", "Timeout", "PromiseRejected", "ContinueAsNew", "Cancelled",
        "Debounce",
        "DeterminismViolation",
    ]:  # fmt: skip
        assert name in durable.__all__, name


def test_error_tree() -> None:
    for name in durable.__all__:
        obj = getattr(durable, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj is not durable.Cancelled:
            assert issubclass(obj, durable.DurableError), name
    assert issubclass(durable.Cancelled, asyncio.CancelledError)
    assert not issubclass(durable.Cancelled, Exception)
    # A generic `except TimeoutError` (or pytest.raises(TimeoutError)) sees durable's too.
    assert issubclass(durable.Timeout, TimeoutError)


def test_task_state_compares_to_lowercase_strings() -> None:
    assert durable.TaskState.COMPLETE == "complete"
    assert durable.TaskState("failed") is durable.TaskState.FAILED


def test_workflow_decorator_refuses_sync_functions_at_import() -> None:
    with pytest.raises(TypeError, match="async def"):

        @durable.workflow
        def not_async(ctx: durable.Context) -> None: ...

    with pytest.raises(TypeError):

        @durable.workflow(queue="q")
        def not_async_either(ctx: durable.Context) -> None: ...


def test_workflow_reference_is_module_and_qualname() -> None:
    @durable.workflow(queue="emails")
    async def send(ctx: durable.Context) -> None: ...

    assert (
        send.reference == f"{__name__}:test_workflow_reference_is_module_and_qualname.<locals>.send"
    )
    assert send.options.queue == "emails"


# Statement shapes, not bare words: "DELETE url" in an HTTP docstring is not SQL.
SQL = re.compile(
    r"\bSELECT\s+\S|\bINSERT\s+INTO\b|\bUPDATE\s+\S+\s+SET\b|\bDELETE\s+FROM\b", re.IGNORECASE
)


def test_sql_lives_only_in_queries_py() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "store/queries.py" or relative.startswith("_migrations/"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SQL.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


def test_hot_path_imports_neither_sqlalchemy_nor_alembic() -> None:
    import subprocess
    import sys

    code = (
        "import sys, durable, durable.worker.worker, durable.client\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
