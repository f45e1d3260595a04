"""Checking new code against recorded histories: ``durable export`` and ``durable check``."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

import durable
from durable_cli import output
from durable_cli.exit_codes import ExitCode
from durable_cli.options import TaskId, database_url_option, task_id_argument
from durable_cli.session import connect, run

if TYPE_CHECKING:  # click >= 8.4 types ParamType by what it converts to (see options.py)
    _DurationParam = click.ParamType[timedelta]
else:
    _DurationParam = click.ParamType

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")


class Duration(_DurationParam):
    """A duration: seconds, or a number with a unit (``90s``, ``15m``, ``6h``, ``7d``, ``2w``)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.match(str(value).strip())
        if match is None:
            self.fail(f"{value!r} is not a duration (e.g. 90s, 15m, 6h, 7d)", param, ctx)
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])


@click.command("export")
@task_id_argument
@database_url_option
@click.pass_context
def export(ctx: click.Context, task_id: int) -> int:
    """Print task ID's history as one JSON document (for `durable check --history FILE`)."""
    from durable.testing import History

    async def go() -> int:
        async with connect(ctx) as client:
            history = History.of_task(await client.get(task_id), await client.events(task_id))
        output.echo_line(json.dumps(history.to_json(), ensure_ascii=False))
        return ExitCode.OK

    return run(go())


@click.command("check")
@click.option("--workflow", "workflow", metavar="REF", help="Only tasks of this workflow.")
@click.option(
    "--state",
    type=click.Choice([s.value for s in durable.TaskState]),
    help="Only tasks in this state.",
)
@click.option("--since", type=Duration(), help="Only tasks created this long ago or later.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="At most this many tasks from the database, newest first.",
)
@click.option("--task", "task_ids", multiple=True, type=TaskId(), metavar="ID", help="This task.")
@click.option(
    "--history",
    "files",
    multiple=True,
    metavar="FILE",
    help="A history written by `durable export` (repeatable); no database is read.",
)
@click.option(
    "--allow-module",
    "allow_modules",
    multiple=True,
    metavar="PREFIX",
    help="Workflows may also come from modules under this prefix, wherever installed.",
)
@database_url_option
@click.pass_context
def check(
    ctx: click.Context,
    workflow: str | None,
    state: str | None,
    since: timedelta | None,
    limit: int,
    task_ids: tuple[int, ...],
    files: tuple[str, ...],
    allow_modules: tuple[str, ...],
) -> int:
    """Replay recorded histories against the code importable from the current directory.

    Performs nothing and writes nothing. Histories come from --history files, or from the
    database (--task IDs, else the newest --limit tasks matching the filters). Workflows are
    imported as `durable-worker` would from here (--allow-module for installed packages).
    One line per task: `ok`, or the seq where the code diverges with what was recorded and
    what the code asked for. Exit codes: 0 all replay, 1 any diverges, 2 bad input.
    """
    from durable.testing import BadHistory, History

    try:
        histories = [History.load(path) for path in files]
    except BadHistory as error:
        raise click.BadParameter(str(error), param_hint="--history") from None
    filtered = bool(workflow or state or since)

    async def go() -> int:
        if task_ids or filtered or not files:
            histories.extend(await _from_database(ctx, workflow, state, since, limit, task_ids))
        return await _check(histories, allow_modules)

    return run(go())


async def _from_database(
    ctx: click.Context,
    workflow: str | None,
    state: str | None,
    since: timedelta | None,
    limit: int,
    task_ids: tuple[int, ...],
) -> list[Any]:
    from durable.testing import History

    histories = []
    async with connect(ctx) as client:
        if task_ids:
            tasks = [await client.get(task_id) for task_id in task_ids]
        else:
            # Newest first: the first `limit` tasks, cut at `since`, are the newest ones
            # created since then.
            tasks = await client.list_tasks(state=state, workflow=workflow, limit=limit)
            if since is not None:
                cutoff = datetime.now(UTC) - since
                tasks = [task for task in tasks if task.created_at >= cutoff]
        for task in tasks:
            histories.append(History.of_task(task, await client.events(task.id)))
    return histories


async def _check(histories: list[Any], allow_modules: tuple[str, ...]) -> int:
    from durable.testing import replay
    from durable.testing.replayer import default_loader

    if not histories:
        output.note("no task to check")
        return ExitCode.OK
    cwd = os.getcwd()
    if not sys.path or sys.path[0] != cwd:
        sys.path.insert(0, cwd)  # the code of the current directory, as `python -m` does
    loader = default_loader(cwd, allow_modules)
    failed = False
    for history in histories:
        replayed = await replay(history, loader)
        where = f"task {history.task_id} ({history.workflow})"
        if replayed.ok:
            output.echo_line(f"{where}: ok")
            continue
        failed = True
        if replayed.divergence is not None:
            d = replayed.divergence
            output.echo_line(
                f"{where}: diverges at seq {d.seq}: recorded {d.recorded}, "
                f"code asked for {d.requested}"
            )
        else:
            output.echo_line(f"{where}: cannot replay: {replayed.error}")
    return ExitCode.FAILED if failed else ExitCode.OK


COMMANDS = (export, check)
