"""An HTTP call recorded as a step: ``ctx.http`` (needs ``pip install 'durable-engine[http]'``).

``fetch`` sends a GET with ``ctx.http.get``. The response (status, headers, body, final URL) is
recorded in the task's event log like any step result, so a replay (after a crash, a long
sleep, ``durable retry``) gets the same response back without sending the request again. A
request that cannot be sent is retried per the policy given; an error status is a response like
any other, for the workflow to judge.

Start a worker from the repository root, then fetch a URL::

    durable-worker &
    durable launch --tail --arg '"https://www.python.org/"' 'fetch' examples.http_call:fetch

and see what was recorded with ``durable events ID`` (the id is the first line on stderr). With
``--arg 5`` after the URL it pauses 5 s, suspended, and replays before it reports: the request is
not sent again.
"""

from __future__ import annotations

from typing import Any

import durable

RETRY = durable.RetryPolicy(max_attempts=4, initial_interval=1.0, backoff=2.0)


@durable.workflow
async def fetch(ctx: durable.Context, url: str, pause: float = 0.0) -> dict[str, Any]:
    """GET ``url`` (retrying failed connections); a summary of the response.

    With a ``pause`` (seconds) before the summary: a long one suspends the task, which is then
    resumed by replay, and the recorded response is used again without a second request.
    """
    response = await ctx.http.get(url, retry=RETRY, timeout=10)
    content_type = response.headers.get("content-type", "unknown")
    print(f"GET {url} -> {response.status} ({content_type}, {len(response.text)} characters)")
    if pause:
        await ctx.sleep(pause)
        print(f"after {pause:g} s, still {response.status}")
    if not response.is_success:
        print(f"not a success: {response.text[:200]}")
    return {
        "status": response.status,
        "content_type": content_type,
        "length": len(response.text),
        "url": response.url,
    }
