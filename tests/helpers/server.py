"""`durable serve`'s app run in the test's own process by uvicorn, on a free loopback port.

The socket is bound and listening before uvicorn starts, so requests made at once wait in the
backlog until the app has connected to its database: no readiness wait is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn

from durable.server import create_app


@contextlib.asynccontextmanager
async def running_server(db_url: str, token: str | None = None) -> AsyncIterator[str]:
    """The server's base URL (``http://127.0.0.1:PORT``) while it runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(db_url, token=token),
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        sock.close()
