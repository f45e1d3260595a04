"""The client refuses bad input with durable's errors, never asyncpg's, and writes nothing.

Values Postgres cannot store (a NUL character, a lone surrogate, an integer beyond its
numeric type) are `SerializationError`s; arguments of the wrong type are `TypeError`s; a
number no task id can be is an unknown id (`TaskNotFound`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import durable

HELLO = "examples.hello_world:main"
NotJson = durable.SerializationError

Call = Callable[[durable.Client], Awaitable[Any]]

BAD_CALLS: list[tuple[str, Call, type[Exception], str]] = [
    ("args str", lambda c: c.launch(HELLO, args="abc"), TypeError, "args must be a list"),  # type: ignore[arg-type]
    ("kwargs list", lambda c: c.launch(HELLO, kwargs=[1]), TypeError, "kwargs must be a dict"),  # type: ignore[arg-type]
    ("NUL arg", lambda c: c.launch(HELLO, args=["a\x00"]), NotJson, "NUL"),
    ("NUL kwarg key", lambda c: c.launch(HELLO, kwargs={"\x00": 1}), NotJson, "NUL"),
    ("surrogate arg", lambda c: c.launch(HELLO, args=["\ud800"]), NotJson, "surrogate"),
    ("huge int", lambda c: c.launch(HELLO, args=[10**5000]), NotJson, "integer"),
    ("NUL name", lambda c: c.launch(HELLO, name="a\x00"), NotJson, "task name"),
    ("surrogate key", lambda c: c.launch(HELLO, key="\udcff"), NotJson, "key"),
    ("int key", lambda c: c.launch(HELLO, key=7), TypeError, "the key must be a string"),  # type: ignore[arg-type]
    ("NUL queue", lambda c: c.launch(HELLO, queue="q\x00"), NotJson, "queue"),
    ("reject None", lambda c: c.reject("p", None), TypeError, "rejection message must be a string"),  # type: ignore[arg-type]
    ("NUL message", lambda c: c.reject("p", "a\x00"), NotJson, "NUL"),
    ("NUL promise", lambda c: c.resolve("p\x00", 1), NotJson, "promise id"),
    ("NUL value", lambda c: c.resolve("p", "\x00"), NotJson, "NUL"),
    ("peek surrogate", lambda c: c.peek("\udcff"), NotJson, "promise id"),
    ("limit", lambda c: c.list_tasks(limit=2**64), ValueError, "limit must be from 1"),
    ("limit 0", lambda c: c.list_tasks(limit=0), ValueError, "limit must be from 1"),
    ("filter", lambda c: c.list_tasks(workflow="\x00"), NotJson, "filter"),
    ("big id", lambda c: c.get(2**64), durable.TaskNotFound, "no task with id"),
    ("negative id", lambda c: c.cancel(-1), durable.TaskNotFound, "no task with id"),
    ("str id", lambda c: c.get("7"), TypeError, "a task id is an integer"),  # type: ignore[arg-type]
    ("big id events", lambda c: c.events(2**70), durable.TaskNotFound, "no task"),
    ("notify event", lambda c: c.notify(1, "\x00"), NotJson, "event"),
    ("notify data", lambda c: c.notify(1, "e", {"x": "\ud800"}), NotJson, "surrogate"),
    ("notify id", lambda c: c.notify(2**63, "e"), durable.TaskNotFound, "no task"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [pytest.param(call, error, match, id=name) for name, call, error, match in BAD_CALLS],
)
async def test_bad_input_is_a_durable_error_or_a_type_error(
    db_url: str, call: Call, error: type[Exception], match: str
) -> None:
    async with durable.Client(db_url) as client:
        with pytest.raises(error, match=match):
            await call(client)
        assert await client.list_tasks() == []
        assert (await client.peek("p")).state == "pending"
