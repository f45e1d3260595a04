"""Rendering for people (aligned tables) and for programs (``--json``).

Data goes to stdout, messages to stderr. Tables truncate long cells; ``--json`` never does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import click

import durable

CELL_WIDTH = 60
EVENT_COLUMNS = ("seq", "kind", "label", "payload")
TASK_COLUMNS = ("id", "name", "workflow", "state", "queue", "attempts", "created_at")
WORKER_COLUMNS = ("id", "host", "pid", "queues", "concurrency", "heartbeat_age", "tasks_held")


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def echo_line(line: str) -> None:
    """Print one line on stdout and flush it, so that a pipe sees it at once."""
    click.echo(line)
    sys.stdout.flush()


def note(message: str) -> None:
    """Print a message for the person at the terminal, on stderr."""
    click.echo(message, err=True)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Plain aligned columns under a header row; cells longer than `CELL_WIDTH` are cut."""
    cells = [list(columns)] + [[cell(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def cell(value: Any, width: int = CELL_WIDTH) -> str:
    """One table cell: compact JSON for structured values, one line, at most ``width`` chars."""
    if value is None:
        text = "-"
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ", timespec="seconds")
    elif isinstance(value, str):
        text = value
    else:
        text = compact(value)
    text = " ".join(text.split()) if ("\n" in text or "\t" in text) else text
    return text if len(text) <= width else text[: width - 1] + "…"


def compact(value: Any) -> str:
    """``value`` as one-line JSON."""
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def task_rows(tasks: Iterable[durable.TaskInfo]) -> list[list[Any]]:
    """Rows for `TASK_COLUMNS`."""
    return [
        [t.id, t.name, t.workflow, t.state.value, t.queue, t.attempts, t.created_at] for t in tasks
    ]


def event_rows(events: Iterable[durable.Event], *, with_time: bool) -> list[list[Any]]:
    """Rows for `EVENT_COLUMNS`, plus the event's time when ``with_time``."""
    rows: list[list[Any]] = []
    for event in events:
        row: list[Any] = [event.seq, str(event.kind), event.label, compact(event.payload)]
        if with_time:
            row.append(event.at.isoformat(sep=" ", timespec="milliseconds"))
        rows.append(row)
    return rows


def worker_rows(workers: Iterable[durable.WorkerInfo]) -> list[list[Any]]:
    """Rows for `WORKER_COLUMNS`."""
    return [
        [
            w.id,
            w.host,
            w.pid,
            ",".join(w.queues),
            w.concurrency,
            f"{w.heartbeat_age:.1f}s",
            w.tasks_held,
        ]
        for w in workers
    ]


def task_details(task: durable.TaskInfo) -> str:
    """The task's fields, one per line, with its result or its error and traceback."""
    fields: list[tuple[str, Any]] = [
        ("id", task.id),
        ("name", task.name),
        ("workflow", task.workflow),
        ("state", task.state.value),
        ("queue", task.queue),
        ("key", task.key),
        ("parent", task.parent_id),
        ("args", compact(task.args)),
        ("kwargs", compact(task.kwargs)),
        ("attempts", task.attempts),
        ("worker", task.worker_id),
        ("created", task.created_at),
        ("started", task.started_at),
        ("finished", task.finished_at),
    ]
    if task.state == durable.TaskState.COMPLETE:
        fields.append(("result", compact(task.result)))
    lines = [f"{label + ':':<10}{_field(value)}" for label, value in fields]
    if task.error:
        lines.append(f"{'error:':<10}{error_summary(task.error)}")
        traceback = task.error.get("traceback")
        if traceback:
            lines.append("traceback:")
            lines.extend("  " + line for line in str(traceback).rstrip("\n").splitlines())
    return "\n".join(lines)


def error_summary(error: dict[str, Any]) -> str:
    """``type: message`` of a stored task error."""
    error_type, message = error.get("type"), error.get("message")
    if error_type and message:
        return f"{error_type}: {message}"
    return str(error_type or message or compact(error))


def echo_task_error(task: durable.TaskInfo) -> None:
    """Print a failed task's error and stored traceback on stderr."""
    error = task.error or {}
    traceback = error.get("traceback")
    if traceback:
        note(str(traceback).rstrip("\n"))
    note(f"task {task.id} failed: {error_summary(error)}")


def _field(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    return str(value)
