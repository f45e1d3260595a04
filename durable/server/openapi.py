"""The OpenAPI 3.1 document of ``/api/v1``, served at ``/api/v1/openapi.json``.

Written by hand next to the routes it describes (`durable.server.api.ROUTES`); a test checks
that every route is in it and every path in it is routed.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/responses/Error"}
_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_PROMISE_ID = {"name": "promise_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _sse(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/event-stream": {}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


_TASK = {"$ref": "#/components/schemas/Task"}
_PROMISE = {"$ref": "#/components/schemas/Promise"}
_STATES = ["pending", "running", "suspended", "complete", "failed", "cancelled"]

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "durable", "version": "1", "description": "Tasks, promises and workers."},
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": {
        "/tasks": {
            "get": _op(
                "Tasks, newest first, one page at a time",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "tasks": {"type": "array", "items": _TASK},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        }
                    ),
                    "400": _ERROR,
                    "401": _ERROR,
                },
                parameters=[
                    {"name": "state", "in": "query", "schema": {"enum": _STATES}},
                    {"name": "workflow", "in": "query", "schema": {"type": "string"}},
                    {"name": "queue", "in": "query", "schema": {"type": "string"}},
                    {"name": "name", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "next_cursor of the previous page",
                    },
                ],
            ),
            "post": _op(
                "Launch a task (200 with the existing task for a key already used)",
                {"201": _json(_TASK, "Created"), "200": _json(_TASK), "400": _ERROR, "401": _ERROR},
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["workflow"],
                        "properties": {
                            "workflow": {"type": "string"},
                            "name": {"type": "string"},
                            "args": {"type": "array"},
                            "kwargs": {"type": "object"},
                            "key": {"type": "string"},
                            "queue": {"type": "string"},
                        },
                    }
                ),
            ),
        },
        "/tasks/{task_id}": {
            "get": _op(
                "A task, with its children",
                {"200": _json(_TASK), "404": _ERROR, "401": _ERROR},
                parameters=[_TASK_ID],
            )
        },
        "/tasks/{task_id}/events": {
            "get": _op(
                "Its event log in seq order",
                {
                    "200": _json({"type": "object", "properties": {"events": {"type": "array"}}}),
                    "404": _ERROR,
                    "401": _ERROR,
                },
                parameters=[_TASK_ID],
            )
        },
        "/tasks/{task_id}/logs": {
            "get": _op(
                "Its log; with follow=1, server-sent `line` events until it ends, then `end`",
                {"200": _sse("lines as JSON, or the event stream"), "404": _ERROR, "401": _ERROR},
                parameters=[_TASK_ID, {"name": "follow", "in": "query", "schema": {"enum": ["1"]}}],
            )
        },
        "/tasks/{task_id}/cancel": {
            "post": _op(
                "Request cancellation",
                {"200": _json(_TASK), "404": _ERROR, "409": _ERROR, "401": _ERROR},
                parameters=[_TASK_ID],
            )
        },
        "/tasks/{task_id}/retry": {
            "post": _op(
                "Put a failed or cancelled task back to pending, its events kept",
                {"200": _json(_TASK), "404": _ERROR, "409": _ERROR, "401": _ERROR},
                parameters=[_TASK_ID],
            )
        },
        "/tasks/{task_id}/notify": {
            "post": _op(
                "Send a notification to its mailbox",
                {
                    "200": _json({"type": "object"}),
                    "400": _ERROR,
                    "404": _ERROR,
                    "409": _ERROR,
                    "401": _ERROR,
                },
                parameters=[_TASK_ID],
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["event"],
                        "properties": {"event": {"type": "string"}, "data": {}},
                    }
                ),
            )
        },
        "/promises/{promise_id}": {
            "get": _op(
                "A promise's state",
                {"200": _json(_PROMISE), "401": _ERROR},
                parameters=[_PROMISE_ID],
            )
        },
        "/promises/{promise_id}/resolve": {
            "post": _op(
                "Resolve it (at most once)",
                {"200": _json(_PROMISE), "400": _ERROR, "409": _ERROR, "401": _ERROR},
                parameters=[_PROMISE_ID],
                requestBody=_body(
                    {"type": "object", "required": ["value"], "properties": {"value": {}}}
                ),
            )
        },
        "/promises/{promise_id}/reject": {
            "post": _op(
                "Reject it (at most once)",
                {"200": _json(_PROMISE), "400": _ERROR, "409": _ERROR, "401": _ERROR},
                parameters=[_PROMISE_ID],
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["message"],
                        "properties": {"message": {"type": "string"}},
                    }
                ),
            )
        },
        "/promises/{promise_id}/await": {
            "get": _op(
                "Wait for it; its state when completed or when the timeout runs out",
                {"200": _json(_PROMISE), "400": _ERROR, "401": _ERROR},
                parameters=[
                    _PROMISE_ID,
                    {"name": "timeout", "in": "query", "schema": {"type": "number", "default": 30}},
                ],
            )
        },
        "/workers": {"get": _op("Live workers", {"200": _json({"type": "object"}), "401": _ERROR})},
        "/queues": {
            "get": _op(
                "Queues: live task counts, workers, flow-control settings",
                {"200": _json({"type": "object"}), "401": _ERROR},
            )
        },
        "/schedules": {
            "get": _op(
                "Schedules (empty while none exist)",
                {"200": _json({"type": "object"}), "401": _ERROR},
            )
        },
        "/changes": {
            "get": _op(
                "Server-sent `change` events: launches, log lines, ends",
                {"200": _sse("hints to look again"), "401": _ERROR},
            )
        },
        "/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"})})},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {
            "Error": _json(
                {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "Error",
            )
        },
        "schemas": {
            "Task": {
                "type": "object",
                "required": ["id", "name", "workflow", "state"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "workflow": {"type": "string"},
                    "state": {"enum": _STATES},
                    "queue": {"type": "string"},
                    "key": {"type": ["string", "null"]},
                    "parent_id": {"type": ["integer", "null"]},
                    "args": {"type": "array"},
                    "kwargs": {"type": "object"},
                    "result": {},
                    "error": {"type": ["object", "null"]},
                    "attempts": {"type": "integer"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "started_at": {"type": ["string", "null"]},
                    "finished_at": {"type": ["string", "null"]},
                },
            },
            "Promise": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "state": {"enum": ["pending", "resolved", "rejected"]},
                    "value": {},
                    "message": {"type": ["string", "null"]},
                },
            },
        },
    },
}
