"""``ctx.http``: HTTP calls recorded as steps (extra ``durable-engine[http]``).

Each call is one step of the workflow, labelled ``"http METHOD URL"`` (or ``name=``): it is
numbered when issued, performed with httpx at least once (retried per its ``retry`` policy when
the request itself fails), and its response is recorded as the step's result::

    {"status": 200, "headers": {"content-type": "application/json"}, "body": "...",
     "url": "https://host/path"}

On replay the recorded response is returned and no request is sent. Any status is a response,
not an error: a 500 is recorded and returned like a 200 (``raise_for_status()`` turns it into
``HttpStatusError`` in the workflow, on every replay alike). A request that fails (connection
refused, timeout, ...) raises inside the step, so the retry policy applies; once it is exhausted
the workflow gets ``durable.StepFailed``.

Bodies are recorded as text, decoded with the response's charset (UTF-8 by default) with
undecodable bytes replaced: binary downloads do not survive the trip intact. Header names are
lower-cased, and a header that occurs several times is recorded once, its values joined by
``", "``.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from durable.errors import DurableError
from durable.retry import RetryPolicy

if TYPE_CHECKING:
    from durable.context import Context

MISSING_EXTRA = "ctx.http needs the http extra: pip install 'durable-engine[http]'"


class HttpStatusError(DurableError):
    """The HTTP response's status is not a success (2xx)."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(f"HTTP {response.status} from {response.url}")
        self.response = response
        self.status = response.status


@dataclass(frozen=True)
class HttpResponse:
    """A recorded HTTP response.

    Attributes:
        status: the status code.
        headers: lower-case header names to values.
        text: the body, as text.
        url: the final URL (after redirects).
    """

    status: int
    headers: Mapping[str, str]
    text: str
    url: str

    @property
    def is_success(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not JSON)."""
        return jsonlib.loads(self.text)

    def raise_for_status(self) -> HttpResponse:
        """Return this response if its status is 2xx, else raise ``HttpStatusError``."""
        if not self.is_success:
            raise HttpStatusError(self)
        return self

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> HttpResponse:
        """The response from its recorded JSON form (a step's result)."""
        return cls(
            status=int(record["status"]),
            headers=dict(record["headers"]),
            text=str(record["body"]),
            url=str(record["url"]),
        )


def _require_httpx() -> None:
    try:
        import httpx  # noqa: F401
    except ImportError as error:
        raise ImportError(MISSING_EXTRA) from error


async def perform_request(
    method: str,
    url: str,
    params: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    json: Any,
    content: str | bytes | None,
    data: Mapping[str, Any] | None,
    timeout: float | None,
    follow_redirects: bool,
) -> dict[str, Any]:
    """Send one request with httpx; the response in its recorded JSON form.

    This is the step's code: it runs at least once, and never again once its result is
    recorded.
    """
    try:
        import httpx
    except ImportError as error:
        raise ImportError(MISSING_EXTRA) from error
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=follow_redirects) as client:
        response = await client.request(
            method,
            url,
            params=dict(params) if params is not None else None,
            headers=dict(headers) if headers is not None else None,
            json=json,
            content=content,
            data=dict(data) if data is not None else None,
        )
    return {
        "status": response.status_code,
        "headers": {name.lower(): value for name, value in response.headers.items()},
        "body": response.text,
        "url": str(response.url),
    }


class DurableHttp:
    """``ctx.http``: an HTTP client whose every call is a recorded step of the workflow."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def get(self, url: str, **kwargs: Any) -> HttpResponse:
        """A ``get`` request; the keyword arguments are those of :meth:`request`."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> HttpResponse:
        """A ``post`` request; the keyword arguments are those of :meth:`request`."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> HttpResponse:
        """A ``put`` request; the keyword arguments are those of :meth:`request`."""
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> HttpResponse:
        """A ``patch`` request; the keyword arguments are those of :meth:`request`."""
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> HttpResponse:
        """A ``delete`` request; the keyword arguments are those of :meth:`request`."""
        return await self.request("DELETE", url, **kwargs)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        timeout: float | None = 30.0,
        follow_redirects: bool = True,
        retry: RetryPolicy | None = None,
        name: str | None = None,
    ) -> HttpResponse:
        """Send an HTTP request as a recorded step and return its (recorded) response.

        Args:
            method: the HTTP method (upper-cased).
            url: the URL; with ``method`` it makes the step's label ``"http METHOD URL"``.
            params: query parameters added to the URL.
            headers: request headers.
            json: a body sent as JSON.
            content: a raw body.
            data: a body sent as a form.
            timeout: seconds allowed per attempt, the whole request included (None: no limit).
            follow_redirects: follow redirects (the recorded ``url`` is the final one).
            retry: the retry policy for failed requests (default: the workflow's, else one
                attempt). Statuses are never retried: only requests that raise.
            name: the label the step is recorded under instead of ``"http METHOD URL"``.

        Raises:
            durable.StepFailed: the request raised on its last attempt (connection refused,
                timeout, ...); also on every replay.
            ImportError: httpx is not installed (the ``http`` extra).
        """
        _require_httpx()
        verb = method.upper()
        record: dict[str, Any] = await self._ctx.step(
            perform_request,
            verb,
            url,
            params,
            headers,
            json,
            content,
            data,
            timeout,
            follow_redirects,
            name=name or f"http {verb} {url}",
            retry=retry,
            timeout=timeout,
        )
        return HttpResponse.from_record(record)
