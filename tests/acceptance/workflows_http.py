"""Workflows that call HTTP through ``ctx.http``, and the local server the tests point them at.

The server is a tiny HTTP/1.1 responder on ``asyncio.start_server`` (one request per
connection) that counts the requests it serves, so that a test can tell whether a replay sent
a request again. It runs on the test's event loop; workers in other processes reach it over
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import durable
from durable.http import HttpStatusError

# -- the local server -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedRequest:
    """One request the local server answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class LocalHttpServer:
    """``async with LocalHttpServer() as server:`` serves ``server.url`` until the block ends.

    Routes: ``GET /hello`` (JSON, header ``X-Served-By: local``), ``POST /echo`` (the request
    back as JSON), ``/status/<code>`` (that status), ``/redirect`` (302 to ``/hello``); anything
    else is a 404.
    """

    def __init__(self) -> None:
        self.requests: list[ServedRequest] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> LocalHttpServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def hits(self, path: str) -> int:
        """How many requests for ``path`` were served."""
        return sum(1 for request in self.requests if request.path == path)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode("latin-1").strip()
            if not request_line:
                return
            method, target, _version = request_line.split(" ", 2)
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode("latin-1").strip()) != "":
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = ServedRequest(method, target, headers, body)
            self.requests.append(request)
            status, extra, payload = self._respond(request)
            head = [f"HTTP/1.1 {status} Status", f"Content-Length: {len(payload)}"]
            head += [f"{name}: {value}" for name, value in extra.items()]
            head.append("Connection: close")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
            await writer.drain()
        finally:
            writer.close()

    def _respond(self, request: ServedRequest) -> tuple[int, dict[str, str], bytes]:
        as_json = {"Content-Type": "application/json"}
        if request.path == "/hello":
            body = {"hello": "world", "served": self.hits("/hello")}
            return 200, {**as_json, "X-Served-By": "local"}, json.dumps(body).encode()
        if request.path == "/echo":
            echoed = {
                "method": request.method,
                "json": json.loads(request.body) if request.body else None,
                "content_type": request.headers.get("content-type"),
            }
            return 200, as_json, json.dumps(echoed).encode()
        if request.path.startswith("/status/"):
            code = int(request.path.rsplit("/", 1)[1])
            return code, {"Content-Type": "text/plain"}, f"status {code}".encode()
        if request.path == "/redirect":
            return 302, {"Location": "/hello"}, b""
        return 404, {"Content-Type": "text/plain"}, b"not found"


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port just released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing"


# -- workflows --------------------------------------------------------------------------------


@durable.workflow
async def get_and_post(ctx: durable.Context, base: str) -> dict[str, Any]:
    """A GET, then a POST with a JSON body; returns what each answered."""
    hello = await ctx.http.get(f"{base}/hello")
    echo = await ctx.http.post(f"{base}/echo", json={"order": 7, "items": ["a", "b"]})
    return {
        "get": [hello.status, hello.json(), hello.headers["x-served-by"]],
        "post": [echo.status, echo.json()],
    }


@durable.workflow
async def get_then_fail_once(ctx: durable.Context, url: str, flag: str) -> dict[str, Any]:
    """A GET, then a failure on the first run only (outside any effect, on purpose).

    ``durable retry`` replays it: the recorded response comes back and no request is sent.
    """
    response = await ctx.http.get(url)
    if not Path(flag).exists():
        Path(flag).touch()
        raise RuntimeError("failing once on purpose")
    return {"status": response.status, "json": response.json(), "url": response.url}


@durable.workflow
async def server_error(ctx: durable.Context, url: str) -> dict[str, Any]:
    """A 5xx is a response, not an error; ``raise_for_status`` makes it one."""
    response = await ctx.http.request("GET", url, name="flaky endpoint")
    try:
        response.raise_for_status()
    except HttpStatusError as error:
        return {
            "status": response.status,
            "body": response.text,
            "is_success": response.is_success,
            "error": str(error),
        }
    return {"status": response.status}


@durable.workflow
async def unreachable(ctx: durable.Context, url: str) -> dict[str, Any]:
    """A request that cannot connect, retried once, ends in ``durable.StepFailed``."""
    policy = durable.RetryPolicy(max_attempts=2, initial_interval=0.01)
    try:
        await ctx.http.get(url, retry=policy, timeout=5)
    except durable.StepFailed as error:
        return {"error_type": error.error_type, "step": error.step}
    return {"error_type": None}
