"""Administration: ``durable migrate`` and ``durable workers``."""

from __future__ import annotations

import click

from durable.config import mask_password
from durable_cli import output
from durable_cli.exit_codes import CommandFailed, ExitCode
from durable_cli.options import database_url_option, json_option
from durable_cli.session import connect, run, schema_client


@click.command()
@click.option("--check", is_flag=True, help="Only check: exit 1 if the schema is not at head.")
@database_url_option
@click.pass_context
def migrate(ctx: click.Context, check: bool) -> int:
    """Upgrade the database schema to this version's head (safe to run again)."""

    async def go() -> int:
        client = schema_client(ctx)
        if check:
            current = await client.schema_is_current()
            where = _where(client.url)
            if not current:
                raise CommandFailed(f"the schema of {where} is not at head: run `durable migrate`")
            output.echo_line(f"the schema of {where} is at head")
            return ExitCode.OK
        await client.migrate()
        output.echo_line(f"the schema of {_where(client.url)} is at head")
        return ExitCode.OK

    return run(go())


@click.command()
@json_option
@database_url_option
@click.pass_context
def workers(ctx: click.Context, as_json: bool) -> int:
    """List registered workers: id, host, pid, heartbeat age, tasks held."""

    async def go() -> int:
        async with connect(ctx) as client:
            found = await client.workers()
        if as_json:
            output.echo_json([w.to_json() for w in found])
        else:
            click.echo(output.table(output.WORKER_COLUMNS, output.worker_rows(found)))
        return ExitCode.OK

    return run(go())


def _where(url: str | None) -> str:
    return mask_password(url) if url else "the database"


COMMANDS = (migrate, workers)
