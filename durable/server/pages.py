"""The dashboard: pages rendered here, kept live by ``static/dashboard.js``.

Each page is complete HTML when it arrives (it reads without its script); the script then
re-renders the task list and the task page from the JSON API whenever the server's change
feed (``/api/v1/changes``, one LISTEN connection for all browsers) says something moved, and
streams a task's log over server-sent events. No build step and nothing fetched from another
host: the script and the style sheet ship in the wheel.
"""

from __future__ import annotations

import hmac
import json
from html import escape
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from durable.client import Client
from durable.errors import TaskNotFound
from durable.models import TaskInfo, TaskState
from durable.server import api
from durable.server.auth import COOKIE

NAV = (("/", "Tasks"), ("/workers", "Workers"), ("/queues", "Queues"), ("/schedules", "Schedules"))


def _page(title: str, body: str, *, active: str, data: str = "") -> HTMLResponse:
    links = "".join(
        f'<a href="{href}"{" class=active" if href == active else ""}>{label}</a>'
        for href, label in NAV
    )
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · durable</title>
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>
</head><body {data}>
<header><span class="brand">durable</span><nav>{links}</nav>
<span id="live" class="live" title="live updates">●</span></header>
<main>{body}</main>
</body></html>"""
    )


def _client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


def _state(state: str) -> str:
    return f'<span class="state {escape(state)}">{escape(state)}</span>'


def _task_row(task: TaskInfo) -> str:
    return (
        f'<tr data-id="{task.id}"><td><a href="/tasks/{task.id}">{task.id}</a></td>'
        f"<td>{escape(task.name)}</td><td><code>{escape(task.workflow)}</code></td>"
        f"<td>{_state(task.state.value)}</td><td>{escape(task.queue)}</td>"
        f"<td>{task.attempts}</td><td>{task.created_at:%Y-%m-%d %H:%M:%S}</td></tr>"
    )


async def task_list(request: Request) -> Response:
    query = request.query_params
    state = query.get("state") or None
    if state not in {None, *TaskState}:
        state = None
    filters = {key: query.get(key) or None for key in ("workflow", "queue", "name")}
    tasks = await _client(request).store.task_page(
        limit=100,
        state=state,
        workflow=filters["workflow"],
        queue=filters["queue"],
        name=filters["name"],
    )
    options = "".join(
        f'<option value="{s}"{" selected" if s == state else ""}>{s}</option>' for s in TaskState
    )
    inputs = "".join(
        f'<input name="{key}" placeholder="{key}" value="{escape(value or "")}">'
        for key, value in filters.items()
    )
    rows = "".join(_task_row(t) for t in tasks) or _EMPTY_ROW
    body = f"""
<h1>Tasks</h1>
<form id="filters" class="filters"><select
name="state"><option value="">any state</option>{options}</select>{inputs}
<button>Filter</button></form>
<table class="tasks"><thead><tr><th>id</th><th>name</th><th>workflow</th><th>state</th>
<th>queue</th><th>attempts</th><th>created</th></tr></thead>
<tbody id="task-rows">{rows}</tbody></table>"""
    return _page("Tasks", body, active="/", data='data-page="tasks"')


_EMPTY_ROW = '<tr class="empty"><td colspan="7">No tasks match.</td></tr>'


async def task_page(request: Request) -> Response:
    client = _client(request)
    try:
        task_id = int(request.path_params["task_id"])
        task = await client.get(task_id)
    except (ValueError, TaskNotFound):
        return _page("Not found", "<h1>No such task</h1>", active="/")
    parent = (
        f'<a href="/tasks/{task.parent_id}">task {task.parent_id}</a>' if task.parent_id else "-"
    )
    body = f"""
<h1><span id="task-name">{escape(task.name)}</span> <small>task {task.id}</small>
<span id="task-state">{_state(task.state.value)}</span></h1>
<dl class="fields">
<dt>workflow</dt><dd><code>{escape(task.workflow)}</code></dd>
<dt>queue</dt><dd>{escape(task.queue)}</dd><dt>parent</dt><dd>{parent}</dd>
<dt>attempts</dt><dd id="task-attempts">{task.attempts}</dd>
<dt>created</dt><dd>{task.created_at:%Y-%m-%d %H:%M:%S}</dd>
</dl>
<div class="actions">
<button id="cancel">Cancel</button> <button id="retry">Retry</button>
<form id="promise" class="promise"><input name="promise" placeholder="promise id" required>
<input name="value" placeholder='value (JSON), e.g. {{"ok": true}}'>
<button name="action" value="resolve">Resolve</button>
<button name="action" value="reject">Reject</button></form>
<span id="action-result" class="note"></span>
</div>
<div id="task-error" class="error"></div>
<h2>Timeline</h2>
<div id="timeline" class="timeline"><p class="note">Loading…</p></div>
<h2>Children</h2><div id="children" class="note">none</div>
<h2>Log</h2><pre id="log" class="log"></pre>"""
    return _page(task.name, body, active="/", data=f'data-page="task" data-task="{task.id}"')


async def workers_page(request: Request) -> Response:
    found = await _client(request).workers()
    rows = "".join(
        f"<tr><td><code>{escape(w.id)}</code></td><td>{escape(w.host)}</td><td>{w.pid}</td>"
        f"<td>{escape(', '.join(w.queues))}</td><td>{w.concurrency}</td>"
        f"<td>{w.heartbeat_age:.1f} s</td><td>{w.tasks_held}</td></tr>"
        for w in found
    )
    body = f"""<h1>Workers</h1><table><thead><tr><th>id</th><th>host</th><th>pid</th>
<th>queues</th><th>concurrency</th><th>heartbeat age</th><th>tasks held</th></tr></thead>
<tbody>{rows or '<tr class="empty"><td colspan="7">No live worker.</td></tr>'}</tbody></table>"""
    return _refreshing(_page("Workers", body, active="/workers"))


async def queues_page(request: Request) -> Response:
    response = await _api_json(request, "queues")
    rows = "".join(
        f"<tr><td>{escape(q['name'])}</td><td>{q['pending']}</td><td>{q['running']}</td>"
        f"<td>{q['suspended']}</td><td>{_age(q['oldest_pending_age'])}</td>"
        f"<td>{q['workers']}</td><td><code>{escape(_settings(q['settings']))}</code></td></tr>"
        for q in response
    )
    body = f"""<h1>Queues</h1><table><thead><tr><th>queue</th><th>pending</th><th>running</th>
<th>suspended</th><th>oldest pending</th><th>workers</th><th>flow control</th></tr></thead>
<tbody>{rows or '<tr class="empty"><td colspan="7">No queue has live tasks or workers.</td></tr>'}
</tbody></table>"""
    return _refreshing(_page("Queues", body, active="/queues"))


async def schedules_page(request: Request) -> Response:
    found = await _client(request).store.schedules()
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row.values()) + "</tr>"
        for row in found
    )
    head = "".join(f"<th>{escape(k)}</th>" for k in (found[0] if found else {}))
    body = (
        f"<h1>Schedules</h1><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        if found
        else '<h1>Schedules</h1><p class="note">No schedules.</p>'
    )
    return _refreshing(_page("Schedules", body, active="/schedules"))


async def _api_json(request: Request, what: str) -> Any:
    response = await api.queues(request)
    return json.loads(bytes(response.body))[what]


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _settings(row: dict[str, Any] | None) -> str:
    if not row:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in row.items() if k != "name")


def _refreshing(response: HTMLResponse) -> HTMLResponse:
    response.headers["Refresh"] = "5"  # the fleet pages re-read every 5 s
    return response


async def login(request: Request) -> Response:
    token: str | None = request.app.state.token
    wrong = ""
    if request.method == "POST":
        # The one form the server reads: parsed here, which spares a multipart dependency.
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        given = (form.get("token") or [""])[0]
        if token is None or hmac.compare_digest(given, token):
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
            return response
        wrong = '<p class="error">That token is not the server\'s.</p>'
    body = f"""<h1>Sign in</h1>{wrong}<form method="post" class="filters">
<input type="password" name="token" placeholder="API token" autofocus required>
<button>Sign in</button></form>"""
    return _page("Sign in", body, active="")


ROUTES = [
    Route("/", task_list, methods=["GET"]),
    Route("/tasks/{task_id}", task_page, methods=["GET"]),
    Route("/workers", workers_page, methods=["GET"]),
    Route("/queues", queues_page, methods=["GET"]),
    Route("/schedules", schedules_page, methods=["GET"]),
    Route("/login", login, methods=["GET", "POST"]),
]
