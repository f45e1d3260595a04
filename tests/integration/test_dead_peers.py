"""Connections to the database notice a peer that vanished without closing (see pool.py).

A black-holed network (a NAT entry dropped, a powered-off host) sends no FIN or RST, so only
the socket options can end a wait on it: TCP keepalive and TCP_USER_TIMEOUT on every TCP
connection the worker and the client open, pooled or LISTEN. The connections go through the
test proxy so that they are TCP whatever the test server's URL is (the embedded default uses a
unix socket, where there is no network to lose and nothing is set).
"""

from __future__ import annotations

import socket

import asyncpg

from durable.store import pool as pool_module
from tests.helpers.proxy import Proxy

# The TCP-level options, where the platform has them (Linux has all; pool.py sets those it has).
TCP_OPTIONS = {
    name: value
    for name, value in (
        ("TCP_KEEPIDLE", pool_module.KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", pool_module.KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", pool_module.KEEPALIVE_PROBES),
        ("TCP_USER_TIMEOUT", pool_module.USER_TIMEOUT_MS),
    )
    if hasattr(socket, name)
}
EXPECTED = {"SO_KEEPALIVE": 1, **TCP_OPTIONS}


def socket_options(connection: object) -> dict[str, int]:
    sock = connection._transport.get_extra_info("socket")  # type: ignore[attr-defined]
    found = {"SO_KEEPALIVE": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)}
    for name in TCP_OPTIONS:
        found[name] = sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name))
    return found


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
            assert socket_options(plain)["SO_KEEPALIVE"] == 0
        finally:
            await plain.close()
