"""SPEC 13: the JSON API of `durable serve`, against real workers and a real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from durable.server.api import ROUTES
from tests.helpers.processes import REPO_ROOT, WorkerProcess, command, environment, run_cli
from tests.helpers.server import running_server

WF = "tests.acceptance.workflows_server"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a server with a token, sending the token."""
    async with (
        running_server(db_url, token=TOKEN) as base,
        httpx.AsyncClient(base_url=base + "/api/v1", headers=AUTH, timeout=30) as client,
    ):
        yield client


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, data) of a server-sent event stream."""
    event = None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event is not None:
            yield event, json.loads(line.removeprefix("data: "))
            event = None


async def _until_state(api: httpx.AsyncClient, task_id: int, state: str) -> dict[str, Any]:
    """The task once it is in ``state``, following the change feed (no sleeps)."""
    deadline = asyncio.get_running_loop().time() + 60
    async with api.stream("GET", "/changes") as changes:
        lines = changes.aiter_lines()
        # The stream's first line is sent once the server has subscribed: from then on, no
        # change is missed between reading the state and waiting for the next change.
        assert await anext(lines) == ": listening"
        hints: asyncio.Queue[str] = asyncio.Queue()

        async def pump() -> None:
            async for line in lines:
                if line.startswith("event: change"):
                    hints.put_nowait(line)

        reader = asyncio.ensure_future(pump())
        try:
            while True:
                task: dict[str, Any] = (await api.get(f"/tasks/{task_id}")).json()
                if task["state"] == state:
                    return task
                assert asyncio.get_running_loop().time() < deadline, f"still {task['state']}"
                # The next change, or a re-read after 2 s as durable.Client's waiters do: a
                # wake-up is a hint that a process dying between commit and NOTIFY can lose.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hints.get(), 2)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def test_tasks_are_launched_listed_paged_and_read(
    api: httpx.AsyncClient, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    launched = await api.post(
        "/tasks", json={"workflow": f"{WF}:parent", "name": "p-1", "key": "k-1", "queue": "default"}
    )
    assert launched.status_code == 201, launched.text
    task = launched.json()
    assert {
        "id",
        "name",
        "workflow",
        "state",
        "queue",
        "key",
        "parent_id",
        "result",
        "error",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
    } <= set(task)
    assert (task["name"], task["workflow"], task["key"]) == ("p-1", f"{WF}:parent", "k-1")
    again = await api.post("/tasks", json={"workflow": f"{WF}:parent", "key": "k-1"})
    assert (again.status_code, again.json()["id"]) == (200, task["id"])

    done = await _until_state(api, task["id"], "complete")
    assert done["result"] == 49
    [child] = done["children"]
    assert (child["workflow"], child["parent_id"], child["result"]) == (
        f"{WF}:child",
        task["id"],
        49,
    )
    events = (await api.get(f"/tasks/{task['id']}/events")).json()["events"]
    assert [e["kind"] for e in events][:2] == ["child", "child_result"]
    assert {"seq", "kind", "label", "payload", "at"} <= set(events[0])

    for n in range(3):
        await api.post("/tasks", json={"workflow": f"{WF}:broken", "name": f"b-{n}", "queue": "q2"})
    first = (await api.get("/tasks", params={"queue": "q2", "limit": 2})).json()
    assert [t["name"] for t in first["tasks"]] == ["b-2", "b-1"]
    second = (
        await api.get("/tasks", params={"queue": "q2", "limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [t["name"] for t in second["tasks"]] == ["b-0"] and second["next_cursor"] is None
    by_name = (await api.get("/tasks", params={"name": "p-1"})).json()["tasks"]
    assert [t["id"] for t in by_name] == [task["id"]]
    by_workflow = (await api.get("/tasks", params={"workflow": f"{WF}:child"})).json()["tasks"]
    assert [t["id"] for t in by_workflow] == [child["id"]]
    complete = (await api.get("/tasks", params={"state": "complete"})).json()["tasks"]
    assert {t["id"] for t in complete} == {task["id"], child["id"]}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await api.get("/tasks", params={"since": future})).json()["tasks"] == []
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert len((await api.get("/tasks", params={"since": past})).json()["tasks"]) == 5


async def test_cancel_retry_notify_and_logs(
    api: httpx.AsyncClient, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    task = (await api.post("/tasks", json={"workflow": f"{WF}:broken"})).json()
    failed = await _until_state(api, task["id"], "failed")
    assert failed["error"]["type"] == "ValueError"
    assert (await api.get(f"/tasks/{task['id']}/logs")).json() == {"lines": ["about to fail"]}
    retried = await api.post(f"/tasks/{task['id']}/retry")
    assert retried.status_code == 200 and retried.json()["state"] in (
        "pending",
        "running",
        "failed",
    )
    await _until_state(api, task["id"], "failed")

    waiting = (
        await api.post("/tasks", json={"workflow": f"{WF}:approval", "args": ["o-1"]})
    ).json()
    await _until_state(api, waiting["id"], "suspended")
    cancelled = await api.post(f"/tasks/{waiting['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    final = await _until_state(api, waiting["id"], "cancelled")
    assert final["state"] == "cancelled"

    mailbox = (
        await api.post("/tasks", json={"workflow": f"{WF}:approval", "args": ["o-5"]})
    ).json()
    sent = await api.post(f"/tasks/{mailbox['id']}/notify", json={"event": "hello", "data": [1]})
    assert sent.status_code == 200 and sent.json() == {
        "task_id": mailbox["id"],
        "event": "hello",
        "sent": True,
    }


async def test_promises(api: httpx.AsyncClient, workers: Callable[..., WorkerProcess]) -> None:
    await workers().start()
    assert (await api.get("/promises/p-x")).json() == {
        "id": "p-x",
        "state": "pending",
        "value": None,
        "message": None,
    }
    pending = await api.get("/promises/p-x/await", params={"timeout": "0.2"})
    assert pending.json()["state"] == "pending"

    task = (await api.post("/tasks", json={"workflow": f"{WF}:approval", "args": ["o-2"]})).json()
    waiter = asyncio.ensure_future(api.get("/promises/approve-o-2/await", params={"timeout": 30}))
    resolved = await api.post("/promises/approve-o-2/resolve", json={"value": {"by": "ana"}})
    assert resolved.json() == {
        "id": "approve-o-2",
        "state": "resolved",
        "value": {"by": "ana"},
        "message": None,
    }
    assert (await waiter).json()["value"] == {"by": "ana"}
    done = await _until_state(api, task["id"], "complete")
    assert done["result"] == {"by": "ana"}

    rejected = await api.post("/promises/p-r/reject", json={"message": "no"})
    assert rejected.json()["state"] == "rejected" and rejected.json()["message"] == "no"


async def test_errors_are_json_with_400_404_409(api: httpx.AsyncClient) -> None:
    async def check(response: httpx.Response, status: int, fragment: str) -> None:
        assert response.status_code == status, response.text
        assert fragment in response.json()["error"]

    await check(await api.get("/tasks/12345"), 404, "no task with id 12345")
    await check(await api.get("/tasks/12345/events"), 404, "12345")
    await check(await api.get("/tasks/12345/logs", params={"follow": "1"}), 404, "12345")
    await check(await api.post("/tasks/12345/cancel"), 404, "12345")
    await check(await api.get("/no/such/route"), 404, "Not Found")
    await check(await api.get("/tasks/abc"), 400, "integer")
    await check(await api.post("/tasks", json={"name": "x"}), 400, "'workflow'")
    await check(await api.post("/tasks", content=b"{not json"), 400, "not JSON")
    await check(await api.post("/tasks", json={"workflow": "m:f", "args": "x"}), 400, "list")
    await check(await api.post("/tasks", json={"workflow": "m:f", "colour": 1}), 400, "colour")
    await check(await api.get("/tasks", params={"state": "asleep"}), 400, "asleep")
    await check(await api.get("/tasks", params={"limit": "0"}), 400, "limit")
    await check(await api.get("/tasks", params={"since": "yesterday"}), 400, "ISO 8601")
    await check(await api.post("/promises/p/resolve", json={}), 400, "'value'")

    task = (await api.post("/tasks", json={"workflow": "m:f"})).json()
    cancelled = await api.post(f"/tasks/{task['id']}/cancel")  # never ran: cancelled at once
    assert cancelled.json()["state"] == "cancelled"
    await check(await api.post(f"/tasks/{task['id']}/cancel"), 409, "already cancelled")
    await check(await api.post(f"/tasks/{task['id']}/notify", json={"event": "e"}), 409, "finished")
    other = (await api.post("/tasks", json={"workflow": "m:f"})).json()
    await check(await api.post(f"/tasks/{other['id']}/retry"), 409, "pending")
    await api.post("/promises/once/reject", json={"message": "no"})
    await check(await api.post("/promises/once/resolve", json={"value": 1}), 409, "rejected")
    await api.post("/promises/twice/resolve", json={"value": 1})
    await check(await api.post("/promises/twice/reject", json={"message": "late"}), 409, "resolved")


async def test_a_token_is_required_except_for_metrics(db_url: str) -> None:
    async with (
        running_server(db_url, token=TOKEN) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = await http.get("/api/v1/tasks", headers=headers)
            assert refused.status_code == 401
            assert refused.json() == {"error": "missing or wrong bearer token"}
        assert (await http.post("/api/v1/tasks", json={"workflow": "m:f"})).status_code == 401
        assert (await http.get("/api/v1/tasks", headers=AUTH)).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        page = await http.get("/")
        assert page.status_code == 401 and "/login" in page.text
        wrong = await http.post("/login", data={"token": "nope"})
        assert wrong.status_code == 200 and "not the server" in wrong.text
        signed_in = await http.post("/login", data={"token": TOKEN})
        assert signed_in.status_code == 303
        assert (await http.get("/")).status_code == 200  # the cookie the login set
        assert (await http.get("/api/v1/workers")).status_code == 200


async def test_sse_log_follows_a_running_task_to_its_end(
    api: httpx.AsyncClient, workers: Callable[..., WorkerProcess]
) -> None:
    await workers().start()
    task = (await api.post("/tasks", json={"workflow": f"{WF}:approval", "args": ["o-3"]})).json()
    seen: list[tuple[str, Any]] = []
    async with api.stream("GET", f"/tasks/{task['id']}/logs", params={"follow": "1"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = _events(stream)
        seen.append(await anext(events))
        assert seen[0] == ("line", {"line_no": 0, "line": "waiting for approve-o-3"})
        # The stream is open and the task waits: what follows comes from the live task.
        assert (await api.get(f"/tasks/{task['id']}")).json()["state"] in ("running", "suspended")
        await api.post("/promises/approve-o-3/resolve", json={"value": "ok"})
        seen.extend([event async for event in events])
    assert seen[1:] == [
        ("line", {"line_no": 1, "line": "approved: 'ok'"}),
        ("end", {"state": "complete"}),
    ]


async def test_fleet_endpoints_and_openapi(
    api: httpx.AsyncClient, workers: Callable[..., WorkerProcess]
) -> None:
    await workers("--queue", "default", "--queue", "mail").start()
    [worker] = (await api.get("/workers")).json()["workers"]
    assert worker["queues"] == ["default", "mail"] and worker["tasks_held"] == 0
    await api.post("/tasks", json={"workflow": f"{WF}:approval", "args": ["o-4"], "queue": "q9"})
    queues = {q["name"]: q for q in (await api.get("/queues")).json()["queues"]}
    assert set(queues) == {"default", "mail", "q9"}
    assert queues["q9"]["pending"] == 1 and queues["q9"]["workers"] == 0
    assert queues["q9"]["oldest_pending_age"] >= 0
    assert queues["mail"]["workers"] == 1 and queues["mail"]["settings"] is None
    # No schedules table on this revision: an empty list, not an error.
    assert (await api.get("/schedules")).json() == {"schedules": []}

    document = (await api.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    routed = {(r.path, m) for r in ROUTES for m in (r.methods or ()) if m != "HEAD"}
    assert documented == routed


async def test_durable_serve_refuses_a_public_address_without_a_token(db_url: str) -> None:
    refused = await run_cli(db_url, "serve", "--host", "0.0.0.0", "--port", "0")
    assert refused.code == 2
    assert "refusing to listen on 0.0.0.0 without a token" in refused.stderr


async def test_durable_serve_serves_the_api_with_its_token(db_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command("durable"),
        "serve",
        "--port",
        "0",
        cwd=REPO_ROOT,
        env=environment(db_url, {"DURABLE_API_TOKEN": TOKEN}),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert line.startswith("durable serve: listening on http://127.0.0.1:"), line
        base = line.split("listening on ")[1].strip()
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/api/v1/tasks")).status_code == 401
            listed = await http.get("/api/v1/tasks", headers=AUTH)
            assert listed.status_code == 200 and listed.json() == {"tasks": [], "next_cursor": None}
    finally:
        process.terminate()
        await process.wait()
