"""A TCP proxy in front of the test PostgreSQL server, to make the database go away on demand.

In the spirit of asyncpg's ``tests/test_adversity.py``: the proxy listens on 127.0.0.1 (a free
port) and forwards every connection to the real server, over TCP or, for the embedded server's
unix-socket URLs (``?host=/dir``), to the socket ``/dir/.s.PGSQL.<port>``. A test points a worker
at `Proxy.url` and then:

- ``await proxy.break_connections()`` closes every connection going through it (both sides, as a
  network failure or a restarted server would);
- ``proxy.pause()`` refuses new connections (each one is accepted and closed at once, so the
  client fails fast instead of waiting for a timeout); ``proxy.resume()`` accepts them again;
- ``proxy.lose_results(matching)``: statements still reach the server and run (and commit),
  but the result of the next ones whose SQL contains ``matching`` (any statement if empty)
  and that affected or returned at least one row never reaches the client: from that
  statement's BindComplete on, everything the server sends on that connection is thrown
  away, as if the network died right after the commit. A matching statement that touched no
  row (a claim that found nothing, say) is delivered as usual, so a test can aim at the one
  that matters without racing the worker's idle statements. The proxy follows the protocol
  to do so (it reads Parse and Bind to know which statement each result belongs to, and holds
  the result back until its CommandComplete tells how many rows). Such a connection is out
  of step for good: break it. ``proxy.deliver_results()`` ends the mode.

It runs on the test's own event loop: the worker is another process, so nothing blocks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import parse_qsl, urlencode, urlsplit

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Target:
    """Where the proxy forwards to: a TCP host and port, or a unix socket path."""

    host: str | None = None
    port: int | None = None
    socket_path: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Target:
        """The server of a ``postgresql://`` URL (TCP, or unix socket via ``?host=/dir``)."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        host = query.get("host") or parts.hostname or "localhost"
        port = int(query.get("port") or parts.port or 5432)
        if host.startswith("/"):
            return cls(socket_path=os.path.join(host, f".s.PGSQL.{port}"))
        return cls(host=host, port=port)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.socket_path is not None:
            return await asyncio.open_unix_connection(self.socket_path)
        assert self.host is not None and self.port is not None
        return await asyncio.open_connection(self.host, self.port)


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's side, the server's side, the two pumps."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.server):
            writer.transport.abort()
        for pump in self.pumps:
            pump.cancel()


class Proxy:
    """A TCP proxy to the PostgreSQL server of ``url``; use ``async with Proxy(url) as p:``.

    ``url`` defaults to ``DURABLE_TEST_DATABASE_URL``.
    """

    def __init__(self, url: str | None = None) -> None:
        self.target = Target.from_url(url or os.environ["DURABLE_TEST_DATABASE_URL"])
        self.host = "127.0.0.1"
        self.port = 0
        self.accepting = True
        self.losing: str | None = None  # a substring of the SQL whose results are lost
        self.lost = 0  # results lost
        self.accepted = 0  # connections forwarded
        self.refused = 0  # connections closed at once while paused
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> Proxy:
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        await self.break_connections()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def url(self, url: str) -> str:
        """``url`` (same user, password, database, options) going through the proxy."""
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{self.host}:{self.port}" if userinfo else f"{self.host}:{self.port}"
        rebuilt = f"{parts.scheme}://{netloc}{parts.path}"
        return f"{rebuilt}?{urlencode(query, safe='/')}" if query else rebuilt

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        return len(self._links)

    def pause(self) -> None:
        """Refuse new connections (accept and close them at once) until `resume`."""
        self.accepting = False

    def resume(self) -> None:
        """Forward new connections again."""
        self.accepting = True

    def lose_results(self, matching: str = "") -> None:
        """Lose the results of statements whose SQL contains ``matching`` (see the module doc)."""
        self.losing = matching

    def deliver_results(self) -> None:
        """Stop losing results (connections that lost one stay silent: break them)."""
        self.losing = None

    async def break_connections(self) -> int:
        """Close every connection going through the proxy now; returns how many."""
        links = list(self._links)
        for link in links:
            link.abort()
        await asyncio.gather(*(p for link in links for p in link.pumps), return_exceptions=True)
        return len(links)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._forward(reader, writer)
        finally:
            self._handlers.discard(handler)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            server_reader, server_writer = await self.target.connect()
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        link = _Link(writer, server_writer)
        conversation = _Conversation(self)
        link.pumps = [
            asyncio.create_task(_pump(reader, server_writer, conversation.from_client)),
            asyncio.create_task(_pump(server_reader, writer, conversation.from_server)),
        ]
        self._links.add(link)
        try:
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Either side hung up (or the test broke the link): hang up the other one too.
            link.abort()
            await asyncio.gather(*link.pumps, return_exceptions=True)
            self._links.discard(link)


class _Messages:
    """One direction of a connection, cut into protocol messages.

    A message is a type byte, then a length that counts itself and the body. Exceptions, at
    the start only: the client's first messages have no type byte (SSL/GSS encryption
    requests, then the startup message), and the server answers an encryption request with
    one byte (``N``: go on in plain text; ``S``/``G``: encrypted from here, not looked at).
    """

    ENCRYPTION_REQUESTS = (80877103, 80877104)  # SSLRequest, GSSENCRequest

    def __init__(self, *, client: bool) -> None:
        self.client = client
        self.buffer = bytearray()
        self.started = False  # past the untyped start of the conversation
        self.opaque = False  # encrypted: bytes pass through unread

    def feed(self, data: bytes) -> list[bytes]:
        """The complete messages ``data`` finishes (raw bytes, including their header)."""
        if self.opaque:
            return [data]
        self.buffer += data
        messages: list[bytes] = []
        while self.buffer and not self.opaque:
            message = self._next()
            if message is None:
                break
            messages.append(message)
        return messages

    def _take(self, size: int) -> bytes | None:
        if len(self.buffer) < size:
            return None
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    def _next(self) -> bytes | None:
        if not self.started and self.client:
            if len(self.buffer) < 8:
                return None
            size = int.from_bytes(self.buffer[:4], "big")
            code = int.from_bytes(self.buffer[4:8], "big")
            self.started = code not in self.ENCRYPTION_REQUESTS
            return self._take(size)
        if not self.started:
            first = bytes(self.buffer[:1])
            if first == b"N":
                return self._take(1)
            if first in (b"S", b"G"):
                self.opaque = True
                return self._take(len(self.buffer))
            self.started = True
        if len(self.buffer) < 5:
            return None
        return self._take(1 + int.from_bytes(self.buffer[1:5], "big"))


class _Conversation:
    """Follows one connection's protocol, to lose the results the proxy is asked to lose."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.requests = _Messages(client=True)
        self.replies = _Messages(client=False)
        self.statements: dict[bytes, bytes] = {}  # prepared statement name -> SQL
        self.bound: collections.deque[bytes] = collections.deque()  # SQL of each Bind sent
        self.held: bytearray | None = None  # a matching result, until its row count is known
        self.silent = False

    def from_client(self, data: bytes) -> bytes:
        """Forwarded as it is; Parse and Bind are noted on the way."""
        for message in self.requests.feed(data):
            kind, body = message[:1], message[5:]
            if kind == b"P":  # Parse: statement name, SQL, ...
                name, sql = body.split(b"\0", 2)[:2]
                self.statements[name] = sql
            elif kind == b"B":  # Bind: portal name, statement name, ...
                name = body.split(b"\0", 2)[1]
                self.bound.append(self.statements.get(name, b""))
        return data

    def from_server(self, data: bytes) -> bytes:
        """What of ``data`` reaches the client."""
        out = bytearray()
        messages = self.replies.feed(data)
        self.requests.opaque = self.replies.opaque  # encrypted both ways, or neither
        for message in messages:
            if self.silent:
                continue
            kind = message[:1]
            if kind == b"2" and self.bound:  # BindComplete: the result of a statement begins
                sql = self.bound.popleft()
                losing = self.proxy.losing
                if losing is not None and losing.encode() in sql:
                    self.held = bytearray()
            if self.held is None:
                out += message
                continue
            self.held += message
            if kind == b"C":  # CommandComplete: its tag ends with the row count
                if _row_count(message) > 0 and self.proxy.losing is not None:
                    self.silent = True
                    self.proxy.lost += 1
                else:
                    out += self.held
                self.held = None
            elif kind == b"E":  # an error ends the result too: deliver it
                out += self.held
                self.held = None
        return bytes(out)


def _row_count(command_complete: bytes) -> int:
    """The row count of a CommandComplete message (``UPDATE 3``, ``INSERT 0 1``), else 0."""
    tag = command_complete[5:].rstrip(b"\0").split()
    return int(tag[-1]) if tag and tag[-1].isdigit() else 0


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    through: Callable[[bytes], bytes],
) -> None:
    """Copy bytes from ``reader`` to ``writer`` until EOF or an error on either side."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(CHUNK):
            data = through(data)
            if not data:
                continue
            writer.write(data)
            await writer.drain()
