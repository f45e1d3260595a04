"""``durable serve``: the HTTP API, the dashboard and ``/metrics`` (SPEC 13).

The socket is bound here, before uvicorn starts, so that ``--port 0`` works and the line
``listening on http://HOST:PORT`` on stderr is true when it is printed (connections made from
then on wait in the listen backlog until the app is up).
"""

from __future__ import annotations

import socket

import click

import durable
import durable.logs
from durable_cli import output
from durable_cli.exit_codes import ExitCode
from durable_cli.options import database_url, database_url_option
from durable_cli.session import connect, run


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="DURABLE_API_TOKEN",
    default=None,
    help="Bearer token every request but /metrics must carry [default: $DURABLE_API_TOKEN]. "
    "Without one the server listens on loopback addresses only.",
)
@click.option("--log-level", default="warning", show_default=True, help="uvicorn's log level.")
@database_url_option
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, token: str | None, log_level: str) -> int:
    """Serve the JSON API (/api/v1), the dashboard (/) and /metrics until Ctrl-C."""
    try:
        import uvicorn

        from durable.server import create_app, is_loopback
    except ImportError as missing:
        raise click.UsageError(
            f"durable serve needs the serve extra ({missing.name} is not installed): "
            "pip install 'durable-engine[serve]'"
        ) from None
    if not token and not is_loopback(host):
        raise click.UsageError(
            f"refusing to listen on {host} without a token: pass --token or set "
            "DURABLE_API_TOKEN (without one, only loopback addresses are served)"
        )
    url = database_url(ctx)

    async def go() -> int:
        async with connect(ctx):
            pass  # an unreachable database or an old schema: one line and exit 2, not a trace
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise click.UsageError(f"cannot listen on {host}:{port}: {error.strerror}") from None
        sock.listen(128)
        bound_port = sock.getsockname()[1]
        where = f"[{host}]" if family == socket.AF_INET6 else host
        config = uvicorn.Config(
            create_app(url, token=token or None),
            log_level=log_level,
            lifespan="on",
            # Followers of a log hold their connection until the task ends: give them this
            # long after Ctrl-C, then close them.
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        output.note(f"durable serve: listening on http://{where}:{bound_port}")
        await server.serve(sockets=[sock])
        return ExitCode.OK

    durable.logs.configure("console", "warning")
    return run(go())


COMMANDS = [serve]
