"""Schedule commands: ``durable schedule add|list|pause|resume|delete|trigger|backfill``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import click

import durable
from durable_cli import output
from durable_cli.exit_codes import ExitCode
from durable_cli.options import JsonValue, WorkflowReference, database_url_option, json_option
from durable_cli.session import connect, run

SCHEDULE_COLUMNS = ("name", "workflow", "cron", "tz", "queue", "overlap", "paused", "next")
OVERLAPS = ("skip", "buffer_one", "allow", "cancel_other")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """Seconds, or a number with a unit: ``90``, ``30s``, ``10m``, ``2h``, ``1d``, ``1w``."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        match = _DURATION.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a duration (like 90, 30s, 10m, 2h, 1d)", param, ctx)
        return float(match[1]) * _UNIT[match[2]]


class IsoTime(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """An ISO 8601 time with an offset (``2026-12-01T00:00:00+00:00``, ``...Z``)."""

    name = "ISO-TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time", param, ctx)
        if parsed.tzinfo is None:
            self.fail(f"{value!r} has no offset (add +00:00 or Z)", param, ctx)
        return parsed


@click.group()
@database_url_option
def schedule() -> None:
    """Cron schedules: each tick launches one task, however many workers run."""


@schedule.command("add")
@click.argument("name")
@click.argument("workflow", type=WorkflowReference())
@click.option("--cron", "cron_expr", required=True, help="Cron expression (5 fields, or 6).")
@click.option("--tz", "timezone", default="UTC", show_default=True, help="Time zone of --cron.")
@click.option(
    "--arg", "args", multiple=True, type=JsonValue(), metavar="JSON", help="One argument."
)
@click.option("--queue", help="Queue [default: the workflow's, else 'default'].")
@click.option(
    "--overlap",
    type=click.Choice(OVERLAPS),
    default="skip",
    show_default=True,
    help="What a tick does while the previous run is unfinished.",
)
@click.option(
    "--catch-up",
    type=Duration(),
    default=0.0,
    help="Launch ticks missed while no worker ran if this recent [default: 0, skipped].",
)
@database_url_option
@click.pass_context
def add(
    ctx: click.Context,
    name: str,
    workflow: str,
    cron_expr: str,
    timezone: str,
    args: tuple[Any, ...],
    queue: str | None,
    overlap: str,
    catch_up: float,
) -> int:
    """Add (or replace) schedule NAME running WORKFLOW at every tick of --cron."""

    async def go() -> int:
        async with connect(ctx) as client:
            try:
                info = await client.schedule(
                    name,
                    workflow,
                    cron=cron_expr,
                    timezone=timezone,
                    args=list(args),
                    queue=queue,
                    overlap=overlap,
                    catch_up=catch_up,
                )
            except ValueError as error:
                raise click.BadParameter(str(error)) from None
        click.echo(output.table(SCHEDULE_COLUMNS, [_row(info)]))
        return ExitCode.OK

    return run(go())


@schedule.command("list")
@json_option
@database_url_option
@click.pass_context
def list_schedules(ctx: click.Context, as_json: bool) -> int:
    """Every schedule with its next fire time."""

    async def go() -> int:
        async with connect(ctx) as client:
            found = await client.schedules()
        if as_json:
            output.echo_json([s.to_json() for s in found])
        else:
            click.echo(output.table(SCHEDULE_COLUMNS, [_row(s) for s in found]))
        return ExitCode.OK

    return run(go())


def _row(s: durable.ScheduleInfo) -> list[Any]:
    next_fire = "-" if s.paused else s.next_at.isoformat()
    paused = "yes" if s.paused else "no"
    return [s.name, s.workflow, s.cron, s.timezone, s.queue, s.overlap, paused, next_fire]


def _simple(verb: str, help_text: str) -> click.Command:
    @click.command(verb, help=help_text)
    @click.argument("name")
    @database_url_option
    @click.pass_context
    def command(ctx: click.Context, name: str) -> int:
        async def go() -> int:
            async with connect(ctx) as client:
                if verb == "delete":
                    await client.delete_schedule(name)
                    output.echo_line(f"deleted {name}")
                    return ExitCode.OK
                if verb == "trigger":
                    handle = await client.trigger_schedule(name)
                    output.echo_line(str(handle.id))
                    return ExitCode.OK
                change = client.pause_schedule if verb == "pause" else client.resume_schedule
                info = await change(name)
            click.echo(output.table(SCHEDULE_COLUMNS, [_row(info)]))
            return ExitCode.OK

        return run(go())

    return command


schedule.add_command(_simple("pause", "Stop firing schedule NAME."))
schedule.add_command(_simple("resume", "Fire NAME again from its next tick (no catch-up)."))
schedule.add_command(_simple("delete", "Delete schedule NAME (its tasks stay)."))
schedule.add_command(_simple("trigger", "Launch one run of NAME now; print its task id."))


@schedule.command("backfill")
@click.argument("name")
@click.option("--from", "start", type=IsoTime(), required=True, help="First time (included).")
@click.option("--to", "end", type=IsoTime(), required=True, help="Last time (included).")
@database_url_option
@click.pass_context
def backfill(ctx: click.Context, name: str, start: datetime, end: datetime) -> int:
    """Launch every tick of NAME from --from to --to; print the task ids, one a line."""

    async def go() -> int:
        async with connect(ctx) as client:
            try:
                handles = await client.backfill_schedule(name, start, end)
            except ValueError as error:
                raise click.BadParameter(str(error)) from None
        for handle in handles:
            output.echo_line(str(handle.id))
        return ExitCode.OK

    return run(go())


COMMANDS = [schedule]
