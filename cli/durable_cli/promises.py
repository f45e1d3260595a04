"""Durable promises and notifications from the shell: ``promise resolve|reject|peek|await``
and ``notify``, over `durable.Client`'s methods of the same names (SPEC 4)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

import durable
from durable_cli import output
from durable_cli.exit_codes import CommandFailed, ExitCode
from durable_cli.options import JsonValue, database_url_option, task_id_argument
from durable_cli.session import connect, run


@click.group()
@database_url_option
def promise() -> None:
    """Durable promises: resolve, reject, peek, await."""


@promise.command()
@click.argument("promise_id", metavar="ID")
@click.argument("value", metavar="JSON", type=JsonValue())
@database_url_option
@click.pass_context
def resolve(ctx: click.Context, promise_id: str, value: Any) -> int:
    """Resolve promise ID with a JSON value; print the value that won (as JSON).

    A promise is completed at most once. Already resolved: the value that won is printed and
    the command succeeds (stderr says so if it differs from JSON). Already rejected: exits 1.
    """

    async def go() -> int:
        async with connect(ctx) as client:
            try:
                won = await client.resolve(promise_id, value)
            except durable.PromiseRejected as rejected:
                raise CommandFailed(
                    f"promise {promise_id} was already rejected: {rejected.message}"
                ) from None
        output.echo_line(output.compact(won))
        if not _same_json(won, value):
            output.note(f"promise {promise_id} was already resolved with another value; it stands")
        return ExitCode.OK

    return run(go())


@promise.command()
@click.argument("promise_id", metavar="ID")
@click.argument("message")
@database_url_option
@click.pass_context
def reject(ctx: click.Context, promise_id: str, message: str) -> int:
    """Reject promise ID with MESSAGE.

    A promise is completed at most once. Already rejected: the command succeeds (stderr names
    the message that won if it is not MESSAGE). Already resolved: the value that won is printed
    (as JSON) and the command exits 1.
    """

    async def go() -> int:
        async with connect(ctx) as client:
            await client.reject(promise_id, message)
            won = await client.peek(promise_id)
        if won.state == "resolved":
            output.echo_line(output.compact(won.value))
            raise CommandFailed(f"promise {promise_id} was already resolved")
        if won.message != message:
            output.note(
                f"promise {promise_id} was already rejected with another message, which stands: "
                f"{' '.join(str(won.message).split())}"
            )
        return ExitCode.OK

    return run(go())


def _same_json(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same (object keys in any order)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


@promise.command()
@click.argument("promise_id", metavar="ID")
@database_url_option
@click.pass_context
def peek(ctx: click.Context, promise_id: str) -> int:
    """Print promise ID's state (pending, resolved or rejected) as JSON, without waiting."""

    async def go() -> int:
        async with connect(ctx) as client:
            state = await client.peek(promise_id)
        output.echo_json(asdict(state))
        return ExitCode.OK

    return run(go())


@promise.command(name="await")
@click.argument("promise_id", metavar="ID")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after S seconds (exit 124).")
@database_url_option
@click.pass_context
def await_(ctx: click.Context, promise_id: str, timeout: float | None) -> int:
    """Wait for promise ID; print its value as JSON. Exits 1 if it was rejected."""

    async def go() -> int:
        async with connect(ctx) as client:
            try:
                value = await client.wait_promise(promise_id, timeout)
            except durable.PromiseRejected as rejected:
                raise CommandFailed(f"promise {promise_id!r} was rejected: {rejected}") from None
        output.echo_line(output.compact(value))
        return ExitCode.OK

    return run(go())


@click.command()
@task_id_argument
@click.argument("event")
@click.argument("data", metavar="[JSON]", type=JsonValue(), required=False)
@database_url_option
@click.pass_context
def notify(ctx: click.Context, task_id: int, event: str, data: Any) -> int:
    """Send notification EVENT (with optional JSON data) to task ID.

    Exits 1 if the task is finished, 2 if there is no such task.
    """

    async def go() -> int:
        async with connect(ctx) as client:
            await client.notify(task_id, event, data)
        return ExitCode.OK

    return run(go())


COMMANDS = (promise, notify)
