"""The event vocabulary: kinds, payload shapes, and what a replay reads back from them.

Both the engine (which builds payloads and reads recorded ones) and the worker's journal
(which writes some of them inside its own transactions) use this module, so the shape of an
event is written down once.

Every effect whose outcome is handed to the workflow (a *delivery*) carries, once delivered,
the key ``"delivered"``: its position in the order in which the run received outcomes. A replay
hands recorded outcomes back in that order (see engine.py). Events without it were either
recorded but not yet delivered when the run stopped, or written by a version of durable that
did not record the order: both are delivered as soon as the workflow asks for them, which is
what that version did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from durable.models import EventKind

STEP = EventKind.STEP.value
TRANSACTION = EventKind.TRANSACTION.value
SLEEP = EventKind.SLEEP.value
TIMER = EventKind.TIMER.value
NOW = EventKind.NOW.value
RANDOM = EventKind.RANDOM.value
UUID = EventKind.UUID.value
CHILD = EventKind.CHILD.value
CHILD_RESULT = EventKind.CHILD_RESULT.value
PROMISE = EventKind.PROMISE.value
RESOLVE = EventKind.RESOLVE.value
REJECT = EventKind.REJECT.value
PEEK = EventKind.PEEK.value
NOTIFICATION = EventKind.NOTIFICATION.value
PATCH = EventKind.PATCH.value
CANCEL = EventKind.CANCEL.value
RETRY = EventKind.RETRY.value

# The label of timers that asyncio itself sets in workflow code (timeout, wait_for, sleep):
# one fixed label, so that a Python upgrade that changes asyncio's internals still replays.
ASYNCIO_TIMER = "asyncio"

DELIVERED = "delivered"
# How many lines a step's code printed: written to the task's log when the step's outcome
# was delivered, so a replay counts them there. (`PRINTED_LINES` carries the lines themselves
# from the step to the delivery; it is never recorded.)
PRINTED = "printed"
PRINTED_LINES = "_lines"
# The exception a failed step raised, handed to the workflow on the run it happened in (the
# StepFailed it sees is raised from it); never recorded.
CAUSE = "_cause"


@dataclass(frozen=True)
class Recorded:
    """One event recorded by an earlier run."""

    seq: int
    kind: str
    label: str
    payload: Any

    @property
    def delivered(self) -> int | None:
        """Its position in the delivery order, if its outcome reached the workflow."""
        if isinstance(self.payload, dict):
            value = self.payload.get(DELIVERED)
            return None if value is None else int(value)
        return None

    @property
    def retried(self) -> bool:
        """`durable retry` set this outcome aside: the effect runs again."""
        return isinstance(self.payload, dict) and bool(self.payload.get("retried"))

    def is_final(self) -> bool:
        """Whether this is the effect's outcome (not bookkeeping of an effect under way)."""
        payload = self.payload
        if self.retried:
            return False
        if self.kind in (SLEEP, TIMER):
            return DELIVERED in payload  # a timer's outcome is that it fired
        if self.kind in (STEP, TRANSACTION, PROMISE, NOTIFICATION):
            return bool(payload["status"] not in ("retrying", "waiting"))
        return True


@dataclass(frozen=True)
class NewEvent:
    """An event to record: ``payload`` is already JSON text."""

    seq: int
    kind: str
    label: str
    payload: str


def dumps(payload: Any) -> str:
    """JSON text of a payload the engine built (its values already checked)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def with_delivery(payload: dict[str, Any], position: int) -> dict[str, Any]:
    """The payload as recorded once delivered at ``position``."""
    return {**payload, DELIVERED: position}


def step_ok_text(value_text: str, attempts: int, position: int, printed: int) -> str:
    """``{"status": "ok", "value": ..., "attempts": n, "delivered": d}`` around the value's
    one serialisation (the hot path records a step's result and hands it back)."""
    lines = f',"{PRINTED}":{printed}' if printed else ""
    return (
        f'{{"status":"ok","value":{value_text},"attempts":{attempts}{lines},'
        f'"{DELIVERED}":{position}}}'
    )


def error_payload(error: BaseException, attempt: int) -> dict[str, Any]:
    """A failed step or transaction."""
    return {
        "status": "error",
        "error_type": type(error).__name__,
        "message": safe_str(error),
        "attempts": attempt,
    }


def safe_str(error: BaseException) -> str:
    """``str(error)``, or a stand-in when the exception's own ``__str__`` raises."""
    try:
        return str(error)
    except Exception as failure:  # a user's exception class with a broken __str__
        return f"<{type(error).__name__}: str() failed with {type(failure).__name__}>"


def retry_cut(payload: dict[str, Any]) -> tuple[int, int, int, int]:
    """A retry marker's (cut position, resume seq, resume position, resume log line)."""
    return (
        int(payload["cut"]),
        int(payload["resume_seq"]),
        int(payload["resume_delivered"]),
        int(payload["resume_line"]),
    )
