"""Connections to the database notice a peer that vanished without closing (see pool.py).

A black-holed network (a NAT entry dropped, a powered-off host) sends no FIN or RST, so only
the socket options can end a wait on it: TCP keepalive and TCP_USER_TIMEOUT on every TCP
connection the worker and the client open, pooled or LISTEN. The connections go through the
test proxy so that they are TCP whatever the test server's URL is (the embedded default uses a
unix socket, where there is no network to lose and nothing is set).
"""

from __future__ import annotations

import socket
import sys

import asyncpg
import pytest

from durable.store import pool as pool_module
from tests.helpers.proxy import Proxy

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="TCP_USER_TIMEOUT is Linux's")


def socket_options(connection: object) -> dict[str, int]:
    sock = connection._transport.get_extra_info("socket")  # type: ignore[attr-defined]
    return {
        "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        "idle": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        "interval": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        "probes": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        "user_timeout_ms": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
    }


EXPECTED = {
    "keepalive": 1,
    "idle": pool_module.KEEPALIVE_IDLE,
    "interval": pool_module.KEEPALIVE_INTERVAL,
    "probes": pool_module.KEEPALIVE_PROBES,
    "user_timeout_ms": pool_module.USER_TIMEOUT_MS,
}


async def test_pooled_and_listen_connections_probe_their_peer(db_url: str) -> None:
    async with Proxy(db_url) as proxy:
        url = proxy.url(db_url)
        pool = await pool_module.create_pool(url, min_size=2, max_size=2)
        try:
            async with pool.acquire() as first, pool.acquire() as second:
                assert socket_options(first) == EXPECTED
                assert socket_options(second) == EXPECTED
        finally:
            await pool.close()
        listen = await pool_module.connect(url)
        try:
            assert socket_options(listen) == EXPECTED
        finally:
            await listen.close()


async def test_a_plain_connection_is_left_as_the_driver_made_it(db_url: str) -> None:
    """The options are durable's doing: asyncpg alone sets no keepalive (the test can fail)."""
    async with Proxy(db_url) as proxy:
        plain = await asyncpg.connect(proxy.url(db_url))
        try:
            assert socket_options(plain)["keepalive"] == 0
        finally:
            await plain.close()
