"""``durable serve``: the JSON API, the dashboard and ``/metrics`` in one ASGI app (SPEC 13).

Needs the ``serve`` extra (Starlette and uvicorn): ``pip install 'durable-engine[serve]'``.

- `durable.server.api`: ``/api/v1``, a thin layer over `durable.Client`;
- `durable.server.pages`: the dashboard at ``/``, pages rendered on the server, kept live by
  one small script (``static/dashboard.js``) fed by server-sent events;
- `durable.server.feed`: the one LISTEN connection whose notifications reach every page;
- `durable.server.auth`: the bearer token.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from durable import metrics
from durable.client import Client
from durable.errors import DurableError
from durable.server import api, pages
from durable.server.auth import BearerAuth
from durable.server.feed import Feed

STATIC = Path(__file__).parent / "static"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(database_url: str | None = None, *, token: str | None = None) -> Starlette:
    """The server's ASGI app; it connects to the database when it starts (lifespan).

    Args:
        database_url: the durable database (resolved like the CLI's when None).
        token: the bearer token every request but ``/metrics`` must carry (None: no auth;
            the caller must then listen on loopback only, as ``durable serve`` does).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Client(database_url) as client:
            assert client.url is not None
            feed = Feed(client.url)
            await feed.start()
            app.state.client = client
            app.state.feed = feed
            app.state.token = token
            try:
                yield
            finally:
                await feed.close()

    return Starlette(
        routes=[
            Mount("/api/v1", routes=api.ROUTES),
            Route("/metrics", _metrics, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            *pages.ROUTES,
        ],
        middleware=[Middleware(BearerAuth, token=token)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )


async def _metrics(request: Request) -> Response:
    client: Client = request.app.state.client
    try:
        body = await metrics.scrape(client.store)
    except DurableError as error:
        return PlainTextResponse(f"{error}\n", status_code=503)
    return Response(body, media_type=metrics.CONTENT_TYPE)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, wrong method) as the API's JSON bodies."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code)
