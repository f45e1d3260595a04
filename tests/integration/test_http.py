"""``ctx.http`` (SPEC 3): HTTP calls recorded as steps, replayed without calling again."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

import durable
from durable.http import DurableHttp, HttpResponse, HttpStatusError
from tests.acceptance.workflows_http import LocalHttpServer, refused_url

WORKFLOWS = "tests.acceptance.workflows_http"


@pytest.fixture
async def server() -> AsyncIterator[LocalHttpServer]:
    """A local HTTP server counting the requests it serves."""
    async with LocalHttpServer() as local:
        yield local


async def test_a_get_and_a_post_are_recorded_steps(db_url: str, server: LocalHttpServer) -> None:
    async with (
        durable.Worker(db_url, concurrency=4) as _worker,
        durable.Client(db_url) as client,
    ):
        task = await client.launch(f"{WORKFLOWS}:get_and_post", args=[server.url])
        result = await client.result(task.id, timeout=30)
        events = await client.events(task.id)
    echoed = {"method": "POST", "json": {"order": 7, "items": ["a", "b"]}}
    echoed["content_type"] = "application/json"
    assert result == {"get": [200, {"hello": "world", "served": 1}, "local"], "post": [200, echoed]}
    assert [(e.seq, e.kind, e.label) for e in events] == [
        (0, "step", f"http GET {server.url}/hello"),
        (1, "step", f"http POST {server.url}/echo"),
    ]
    get = events[0].payload
    assert get["status"] == "ok" and get["attempts"] == 1
    recorded = get["value"]
    assert set(recorded) == {"status", "headers", "body", "url"}
    assert recorded["status"] == 200
    assert recorded["headers"]["x-served-by"] == "local"
    assert recorded["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in recorded["headers"])
    assert recorded["body"] == '{"hello": "world", "served": 1}'
    assert recorded["url"] == f"{server.url}/hello"
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/hello"), ("POST", "/echo")]
    assert json.loads(server.requests[1].body) == {"order": 7, "items": ["a", "b"]}


async def test_a_replay_returns_the_recorded_response_without_calling_again(
    db_url: str, server: LocalHttpServer, tmp_path: Path
) -> None:
    flag = tmp_path / "failed-once"
    async with (
        durable.Worker(db_url, concurrency=4) as _worker,
        durable.Client(db_url) as client,
    ):
        task = await client.launch(
            f"{WORKFLOWS}:get_then_fail_once", args=[f"{server.url}/redirect", str(flag)]
        )
        with pytest.raises(durable.TaskFailed, match="failing once on purpose"):
            await client.result(task.id, timeout=30)
        assert flag.exists()
        assert (server.hits("/redirect"), server.hits("/hello")) == (1, 1)
        assert await client.retry(task.id) == "pending"
        result = await client.result(task.id, timeout=30)
        events = await client.events(task.id)
    # The redirect was followed; the replay returned the first run's response.
    assert result == {
        "status": 200,
        "json": {"hello": "world", "served": 1},
        "url": f"{server.url}/hello",
    }
    assert (server.hits("/redirect"), server.hits("/hello")) == (1, 1)
    assert len(events) == 1


async def test_an_error_status_is_returned_not_raised(db_url: str, server: LocalHttpServer) -> None:
    async with (
        durable.Worker(db_url, concurrency=4) as _worker,
        durable.Client(db_url) as client,
    ):
        url = f"{server.url}/status/500"
        task = await client.launch(f"{WORKFLOWS}:server_error", args=[url])
        result = await client.result(task.id, timeout=30)
        (event,) = await client.events(task.id)
    assert result == {
        "status": 500,
        "body": "status 500",
        "is_success": False,
        "error": f"HTTP 500 from {url}",
    }
    assert event.label == "flaky endpoint"
    assert event.payload["status"] == "ok" and event.payload["attempts"] == 1
    assert event.payload["value"]["status"] == 500
    assert server.hits("/status/500") == 1  # a status is never retried


async def test_a_refused_connection_is_retried_then_fails_the_step(db_url: str) -> None:
    url = refused_url()
    async with (
        durable.Worker(db_url, concurrency=4) as _worker,
        durable.Client(db_url) as client,
    ):
        task = await client.launch(f"{WORKFLOWS}:unreachable", args=[url])
        result = await client.result(task.id, timeout=30)
        (event,) = await client.events(task.id)
    assert result == {"error_type": "ConnectError", "step": f"http GET {url}"}
    assert event.payload["status"] == "error"
    assert event.payload["error_type"] == "ConnectError"
    assert event.payload["attempts"] == 2


def test_a_response_reads_as_json_and_checks_its_status() -> None:
    ok = HttpResponse(200, {"content-type": "application/json"}, '{"a": [1]}', "http://h/x")
    assert ok.json() == {"a": [1]}
    assert ok.is_success and ok.raise_for_status() is ok
    moved = HttpResponse(302, {}, "", "http://h/y")
    assert not moved.is_success
    with pytest.raises(HttpStatusError, match="HTTP 302 from http://h/y") as raised:
        moved.raise_for_status()
    assert raised.value.status == 302 and raised.value.response is moved
    assert isinstance(raised.value, durable.DurableError)
    with pytest.raises(ValueError):
        HttpResponse(200, {}, "not json", "http://h/z").json()


async def test_without_httpx_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # import httpx now raises ImportError
    http = DurableHttp(cast(durable.Context, object()))  # refused before any step is issued
    with pytest.raises(ImportError, match=r"pip install 'durable-engine\[http\]'"):
        await http.get("http://127.0.0.1/")
