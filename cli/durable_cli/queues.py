"""Queue commands: ``durable queue list`` and ``durable queue set`` (SPEC 12)."""

from __future__ import annotations

import re
from typing import Any

import click

import durable
from durable_cli import output
from durable_cli.exit_codes import ExitCode
from durable_cli.options import database_url_option, json_option
from durable_cli.session import connect, run

QUEUE_COLUMNS = (
    "name", "concurrency", "key_concurrency", "rate", "paused", "pending", "running", "suspended"
)  # fmt: skip

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d*)?|\.\d+)\s*$")


class Limit(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """A count, or ``none`` to remove the limit."""

    name = "N|none"

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or value is None:
            return value
        if value.strip().lower() == "none":
            return None
        try:
            number = int(value)
        except ValueError:
            self.fail(f"{value!r} is not a whole number (or 'none')", param, ctx)
        if number < self.minimum:
            self.fail(f"must be at least {self.minimum}, not {number}", param, ctx)
        return number


class Rate(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """``N/SECONDS`` (at most N starts per window), or ``none``."""

    name = "N/SECONDS|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple) or value is None:
            return value
        if value.strip().lower() == "none":
            return None
        match = _RATE.match(value)
        if match is None or int(match[1]) < 1 or float(match[2]) <= 0:
            self.fail(f"{value!r} is not N/SECONDS with N >= 1 and SECONDS > 0", param, ctx)
        return int(match[1]), float(match[2])


@click.group()
@database_url_option
def queue() -> None:
    """Flow control of queues: concurrency, per-key concurrency, rate, pause."""


@queue.command("list")
@json_option
@database_url_option
@click.pass_context
def list_queues(ctx: click.Context, as_json: bool) -> int:
    """Queues with settings or unfinished tasks: their limits and what they hold."""

    async def go() -> int:
        async with connect(ctx) as client:
            found = await client.queues()
        if as_json:
            output.echo_json([q.to_json() for q in found])
        else:
            click.echo(output.table(QUEUE_COLUMNS, [_row(q) for q in found]))
        return ExitCode.OK

    return run(go())


def _row(q: durable.QueueInfo) -> list[Any]:
    rate = "-" if q.rate is None else f"{q.rate[0]}/{q.rate[1]:g}s"
    limits = [_or_dash(q.concurrency), _or_dash(q.key_concurrency), rate]
    return [q.name, *limits, "yes" if q.paused else "no", q.pending, q.running, q.suspended]


def _or_dash(value: int | None) -> Any:
    return "-" if value is None else value


@queue.command("set")
@click.argument("name")
@click.option("--concurrency", type=Limit(0), help="Tasks held at once, fleet-wide (or none).")
@click.option(
    "--key-concurrency", type=Limit(1), help="Started, unfinished tasks per key (or none)."
)
@click.option("--rate", type=Rate(), help="At most N task starts per SECONDS (or none).")
@click.option("--pause/--resume", "paused", default=None, help="Stop or restart claiming.")
@database_url_option
@click.pass_context
def set_queue(
    ctx: click.Context,
    name: str,
    concurrency: Any,
    key_concurrency: Any,
    rate: Any,
    paused: bool | None,
) -> int:
    """Change queue NAME's flow control; settings not given stay as they are.

    Workers running now apply it from their next claim.
    """
    given: dict[str, Any] = {}
    source = ctx.get_parameter_source
    for option, value in (
        ("concurrency", concurrency),
        ("key_concurrency", key_concurrency),
        ("rate", rate),
    ):
        if source(option) is click.core.ParameterSource.COMMANDLINE:
            given[option] = value
    if paused is not None:
        given["paused"] = paused

    async def go() -> int:
        async with connect(ctx) as client:
            await client.configure_queue(name, **given)
            [info] = [q for q in await client.queues() if q.name == name]
        click.echo(output.table(QUEUE_COLUMNS, [_row(info)]))
        return ExitCode.OK

    return run(go())


COMMANDS = [queue]
