"""Bearer-token authentication for everything the server serves but ``/metrics``.

Programs send ``Authorization: Bearer T``. A browser cannot put a header on a page load or on
an ``EventSource``, so the dashboard asks for the token once (``/login``) and keeps it in a
cookie that is ``HttpOnly`` (no script reads it) and ``SameSite=Strict`` (no other site's page
can make the browser send it, which is what keeps the dashboard's buttons safe from forged
requests). Tokens are compared in constant time.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from http.cookies import CookieError, SimpleCookie

from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "durable_token"

# Reached without a token: the scrape endpoint (SPEC 13), the login form, and its script.
OPEN_PATHS = ("/metrics", "/login", "/static/")


class BearerAuth:
    """ASGI middleware: 401 for a request without the token (JSON under the API, else the
    login page)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/api/"):
            body = json.dumps({"error": "missing or wrong bearer token"}).encode()
            content_type = b"application/json"
        else:
            body = _LOGIN_REDIRECT.encode()
            content_type = b"text/html; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", content_type),
                    (b"www-authenticate", b'Bearer realm="durable"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path == "/metrics" or any(path.startswith(p) for p in OPEN_PATHS[1:]):
            return True
        return any(hmac.compare_digest(given, self.token or "") for given in _presented(scope))


def _presented(scope: Scope) -> list[str]:
    """Tokens the request carries: the bearer header and the dashboard's cookie."""
    found: list[str] = []
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                found.append(credential.strip())
        elif name == b"cookie":
            cookie: SimpleCookie = SimpleCookie()
            with contextlib.suppress(CookieError):  # another site's malformed cookie
                cookie.load(value.decode("latin-1"))
            if COOKIE in cookie:
                found.append(cookie[COOKIE].value)
    return found


_LOGIN_REDIRECT = (
    '<!doctype html><meta http-equiv="refresh" content="0; url=/login"><a href="/login">Sign in</a>'
)
