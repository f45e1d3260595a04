"""The journal: what the engine needs from persistence, and nothing more."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from durable.replay.history import NewEvent, Recorded

__all__ = ["Journal", "NewEvent", "Recorded", "Writes"]


@dataclass
class Writes:
    """Events and log lines to record in one round trip."""

    events: list[NewEvent] = field(default_factory=list)
    lines: list[tuple[int, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.lines)


class Journal(Protocol):
    """Where the engine records; the worker backs it with the store, tests with a list."""

    async def write(self, writes: Writes) -> None:
        """Record ``writes`` durably, or raise ``control.LeaseLost``."""

    async def peek_promise(self, promise_id: str) -> tuple[str, Any, str | None]:
        """A promise's (state, value, message) now; pending if nobody touched it."""

    async def complete_promise(
        self, seq: int, label: str, promise_id: str, state: str, value: Any, message: str | None
    ) -> dict[str, Any]:
        """Complete a promise and record the winner at ``seq``, in one fenced transaction.

        Returns the recorded payload ``{"state", "value", "message"}`` of the winner.
        """

    async def consume_notification(self, seq: int, label: str) -> dict[str, Any] | None:
        """Take the task's oldest unread notification and record it at ``seq``, together.

        Returns the payload ``{"event", "data", "created_at"}``, or None (mailbox empty).
        """

    async def launch_children(
        self, children: list[tuple[int, str, dict[str, Any]]]
    ) -> dict[int, dict[str, Any]]:
        """Create child tasks and record their launches, in one fenced transaction.

        ``children`` are (seq, label, spec); a spec has name, workflow, args, kwargs, key,
        queue, detached. Returns the payload recorded at each seq:
        ``{"task_id", "name", "workflow", "created"}``.
        """

    async def task_outcome(self, task_id: int) -> tuple[str, Any, Any]:
        """(state, result, error) of a task now."""

    async def transaction(
        self, seq: int, kind: str, label: str, body: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        """Run ``body(connection)`` and record its outcome at ``seq`` in one transaction.

        The event's payload is ``{"status": "ok", "value": <body's result>}``. Returns that
        payload, or the payload already recorded at ``seq`` (a commit whose reply was lost).
        Raises whatever ``body`` raised, with nothing committed, or ``control.LeaseLost``.
        """
