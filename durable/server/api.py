"""The JSON API under ``/api/v1`` (SPEC 13): a thin layer over `durable.Client`.

Errors are ``{"error": "..."}`` with 400 (bad input), 401 (no token: `durable.server.auth`),
404 (unknown task) or 409 (the task or promise is in a state that refuses the request).
Lists are newest first, one page at a time: ``next_cursor`` is passed back as ``cursor``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from durable.client import MAX_BIGINT, Client
from durable.errors import PromiseRejected, SerializationError, TaskFinished, Timeout
from durable.errors import TaskNotFound as _TaskNotFound
from durable.models import TaskState
from durable.server.feed import Feed
from durable.server.openapi import DOCUMENT

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_AWAIT = 300.0  # seconds a `/promises/{id}/await` may hold its connection

Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """The request is malformed: 400."""


class Conflict(Exception):
    """The request does not fit the task's or promise's state: 409."""


def error(status: int, message: str) -> JSONResponse:
    """The API's error body."""
    return JSONResponse({"error": message}, status_code=status)


def _guarded(handler: Handler) -> Handler:
    """Map what the client raises to the API's status codes."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except _TaskNotFound as missing:
            return error(404, str(missing))
        except (Conflict, TaskFinished, PromiseRejected) as conflict:
            return error(409, str(conflict))
        except (BadRequest, SerializationError, ValueError, TypeError) as bad:
            return error(400, str(bad))

    return guarded


def _client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


def _task_id(request: Request) -> int:
    raw = request.path_params["task_id"]
    try:
        task_id = int(raw)
    except ValueError:
        raise BadRequest(f"a task id is an integer, not {raw!r}") from None
    if not 0 <= task_id <= MAX_BIGINT:
        raise _TaskNotFound(f"no task with id {task_id}")
    return task_id


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as bad:
        raise BadRequest(f"the body is not JSON: {bad}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


# -- tasks ---------------------------------------------------------------------------------------


async def list_tasks(request: Request) -> Response:
    query = request.query_params
    limit = _int_param(query.get("limit"), "limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be from 1 to {MAX_LIMIT}")
    state = query.get("state") or None
    if state is not None:
        state = TaskState(state).value  # ValueError: 400
    cursor = query.get("cursor") or None
    since = query.get("since") or None
    tasks = await _client(request).store.task_page(
        limit=limit,
        state=state,
        workflow=query.get("workflow") or None,
        queue=query.get("queue") or None,
        name=query.get("name") or None,
        since=_datetime_param(since) if since else None,
        before=_int_param(cursor, "cursor", 0) if cursor else None,
    )
    next_cursor = str(tasks[-1].id) if len(tasks) == limit else None
    return JSONResponse({"tasks": [t.to_json() for t in tasks], "next_cursor": next_cursor})


async def launch(request: Request) -> Response:
    body = await _body(request)
    unknown = set(body) - {"workflow", "name", "args", "kwargs", "key", "queue"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    workflow = body.get("workflow")
    if not isinstance(workflow, str) or not workflow:
        raise BadRequest(
            "'workflow' (a reference module:function or a registered name) is required"
        )
    client = _client(request)
    handle = await client.launch(
        workflow,
        name=body.get("name"),
        args=body.get("args") or [],
        kwargs=body.get("kwargs"),
        key=body.get("key"),
        queue=body.get("queue"),
    )
    info = await client.get(handle.id)
    return JSONResponse(info.to_json(), status_code=201 if handle.created else 200)


async def get_task(request: Request) -> Response:
    client = _client(request)
    task_id = _task_id(request)
    info = await client.get(task_id)
    children = await client.store.children(task_id)
    return JSONResponse(info.to_json() | {"children": [c.to_json() for c in children]})


async def task_events(request: Request) -> Response:
    events = await _client(request).events(_task_id(request))
    return JSONResponse({"events": [e.to_json() for e in events]})


async def task_logs(request: Request) -> Response:
    client = _client(request)
    task_id = _task_id(request)
    follow = request.query_params.get("follow", "") in ("1", "true", "yes")
    if not follow:
        lines = [line async for line in client.tail(task_id, follow=False)]
        return JSONResponse({"lines": lines})
    await client.get(task_id)  # an unknown id is a 404, not an empty stream
    return StreamingResponse(_log_stream(client, task_id), headers=_SSE_HEADERS)


async def _log_stream(client: Client, task_id: int) -> AsyncIterator[str]:
    """Server-sent events: ``line`` per log line, then ``end`` with the final state.

    `Client.tail` waits on the client's one shared LISTEN connection (and re-checks every few
    seconds only in case a notification was lost), so a follower costs no polling loop.
    """
    yield ": following\n\n"
    number = 0
    async for line in client.tail(task_id):
        yield _sse("line", {"line_no": number, "line": line}, event_id=number)
        number += 1
    info = await client.get(task_id)
    yield _sse("end", {"state": info.state.value})


async def cancel(request: Request) -> Response:
    client = _client(request)
    task_id = _task_id(request)
    before = await client.get(task_id)
    if before.state.is_final:
        raise Conflict(f"task {task_id} is already {before.state.value}")
    await client.cancel(task_id)
    return JSONResponse((await client.get(task_id)).to_json())


async def retry(request: Request) -> Response:
    client = _client(request)
    task_id = _task_id(request)
    before = await client.get(task_id)
    if before.state not in (TaskState.FAILED, TaskState.CANCELLED):
        raise Conflict(
            f"only a failed or cancelled task can be retried; task {task_id} is "
            f"{before.state.value}"
        )
    await client.retry(task_id)
    return JSONResponse((await client.get(task_id)).to_json())


async def notify(request: Request) -> Response:
    body = await _body(request)
    event = body.get("event")
    if not isinstance(event, str) or not event:
        raise BadRequest("'event' (a string) is required")
    task_id = _task_id(request)
    await _client(request).notify(task_id, event, body.get("data"))
    return JSONResponse({"task_id": task_id, "event": event, "sent": True})


# -- promises ------------------------------------------------------------------------------------


async def get_promise(request: Request) -> Response:
    promise_id = request.path_params["promise_id"]
    return JSONResponse(await _promise_json(_client(request), promise_id))


async def resolve(request: Request) -> Response:
    body = await _body(request)
    if "value" not in body:
        raise BadRequest("'value' is required (null is a value)")
    promise_id = request.path_params["promise_id"]
    client = _client(request)
    try:
        await client.resolve(promise_id, body["value"])
    except PromiseRejected as rejected:
        raise Conflict(f"promise {promise_id!r} was already rejected: {rejected}") from None
    return JSONResponse(await _promise_json(client, promise_id))


async def reject(request: Request) -> Response:
    body = await _body(request)
    message = body.get("message")
    if not isinstance(message, str):
        raise BadRequest("'message' (a string) is required")
    promise_id = request.path_params["promise_id"]
    client = _client(request)
    await client.reject(promise_id, message)
    state = await _promise_json(client, promise_id)
    if state["state"] == "resolved":
        raise Conflict(f"promise {promise_id!r} was already resolved")
    return JSONResponse(state)


async def await_promise(request: Request) -> Response:
    """The promise once completed, or as it is (pending) when ``timeout`` seconds ran out."""
    promise_id = request.path_params["promise_id"]
    timeout = _float_param(request.query_params.get("timeout"), "timeout", 30.0)
    if not 0 <= timeout <= MAX_AWAIT:
        raise BadRequest(f"timeout must be from 0 to {MAX_AWAIT:g} seconds")
    client = _client(request)
    try:
        await client.wait_promise(promise_id, timeout=timeout)
    except (PromiseRejected, Timeout):
        pass  # rejected, or still pending at the timeout: the state says which
    return JSONResponse(await _promise_json(client, promise_id))


async def _promise_json(client: Client, promise_id: str) -> dict[str, Any]:
    state = await client.peek(promise_id)
    return {"id": promise_id, "state": state.state, "value": state.value, "message": state.message}


# -- fleet ---------------------------------------------------------------------------------------


async def workers(request: Request) -> Response:
    found = await _client(request).workers()
    return JSONResponse({"workers": [w.to_json() for w in found]})


async def queues(request: Request) -> Response:
    """Every queue with live tasks, a live worker, or flow-control settings."""
    store = _client(request).store
    counts = await store.live_task_counts()
    ages = await store.oldest_pending()
    fleet = await _client(request).workers()
    settings = {row.get("name"): row for row in await store.queue_settings()}
    names = {q for _, q, _ in counts} | {q for w in fleet for q in w.queues} | set(settings)
    rows = []
    for name in sorted(n for n in names if isinstance(n, str)):
        live = {state: n for state, queue, n in counts if queue == name}
        rows.append(
            {
                "name": name,
                "pending": live.get("pending", 0),
                "running": live.get("running", 0),
                "suspended": live.get("suspended", 0),
                "oldest_pending_age": ages.get(name),
                "workers": sum(1 for w in fleet if name in w.queues),
                "settings": settings.get(name),
            }
        )
    return JSONResponse({"queues": rows})


async def schedules(request: Request) -> Response:
    return JSONResponse({"schedules": await _client(request).store.schedules()})


async def changes(request: Request) -> Response:
    """Server-sent ``change`` events as tasks are launched, log, suspend or end."""
    feed: Feed = request.app.state.feed
    return StreamingResponse(_change_stream(feed), headers=_SSE_HEADERS)


async def _change_stream(feed: Feed) -> AsyncIterator[str]:
    async with feed.subscribe() as hints:
        yield ": listening\n\n"
        while True:
            try:
                hint = await asyncio.wait_for(hints.get(), 15)
            except TimeoutError:
                yield ": keep-alive\n\n"  # proxies close silent connections
                continue
            yield _sse("change", {"hint": hint})


async def openapi(_request: Request) -> Response:
    return JSONResponse(DOCUMENT)


# -- helpers -------------------------------------------------------------------------------------

_SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass events through at once
}


def _sse(event: str, data: Any, *, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw!r}") from None


def _float_param(raw: str | None, name: str, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number, not {raw!r}") from None


def _datetime_param(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"since must be an ISO 8601 time, not {raw!r}") from None
    if moment.tzinfo is None:
        raise BadRequest("since needs a time zone (e.g. 2026-12-03T10:00:00Z)")
    return moment


ROUTES = [
    Route("/tasks", _guarded(list_tasks), methods=["GET"]),
    Route("/tasks", _guarded(launch), methods=["POST"]),
    Route("/tasks/{task_id}", _guarded(get_task), methods=["GET"]),
    Route("/tasks/{task_id}/events", _guarded(task_events), methods=["GET"]),
    Route("/tasks/{task_id}/logs", _guarded(task_logs), methods=["GET"]),
    Route("/tasks/{task_id}/cancel", _guarded(cancel), methods=["POST"]),
    Route("/tasks/{task_id}/retry", _guarded(retry), methods=["POST"]),
    Route("/tasks/{task_id}/notify", _guarded(notify), methods=["POST"]),
    Route("/promises/{promise_id}", _guarded(get_promise), methods=["GET"]),
    Route("/promises/{promise_id}/resolve", _guarded(resolve), methods=["POST"]),
    Route("/promises/{promise_id}/reject", _guarded(reject), methods=["POST"]),
    Route("/promises/{promise_id}/await", _guarded(await_promise), methods=["GET"]),
    Route("/workers", _guarded(workers), methods=["GET"]),
    Route("/queues", _guarded(queues), methods=["GET"]),
    Route("/schedules", _guarded(schedules), methods=["GET"]),
    Route("/changes", changes, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
