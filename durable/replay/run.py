"""What a run is made of: its fixed description, its host, its effects, how it ends.

Plain data and the context variables that tie workflow code to its engine; the engine
(engine.py, recorder.py) and the effect functions (effects.py) share them.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from durable.replay.history import Recorded
from durable.replay.loop import DurableTimerHandle
from durable.retry import RetryPolicy

if TYPE_CHECKING:
    from durable.replay.engine import Engine

# The engine of the workflow running in this context; None outside workflows and inside a
# step's own code (a step calling another @durable.step makes a plain call).
current_engine: contextvars.ContextVar[Engine | None] = contextvars.ContextVar(
    "durable_current_engine", default=None
)

# True inside `async with ctx.cleanup():` effects run there although the task is cancelled.
in_cleanup: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "durable_in_cleanup", default=False
)

# The message of the asyncio cancellation that means "the task was cancelled".
CANCEL_MESSAGE = "durable: task cancelled"
# The message of the cancellation that unwinds a run that stops (suspended, released, ended).
STOP_MESSAGE = "durable: the run stops here"

# An outcome as a performer hands it back: the payload, and the JSON text of its value when
# the performer already has it (a step's result, serialised once).
Arrival = tuple[Any, str | None]


def utcnow() -> datetime:
    """The wall clock, UTC-aware."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Condition:
    """What a waiting run needs besides time: a completed promise, a notification, children."""

    promises: tuple[str, ...] = ()
    notification: bool = False
    children: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.promises or self.notification or self.children)


@dataclass(frozen=True)
class Suspension:
    """Why a run stops: the earliest timer it waits for, and what else can wake it."""

    wake_at: datetime | None
    condition: Condition


@dataclass(frozen=True)
class RunSpec:
    """Everything about one run, fixed before it starts."""

    task_id: int
    name: str
    workflow: str
    history: tuple[Recorded, ...] = ()
    log_lines: int = 0
    run: int = 0
    log_base: int = 0
    finished_children: Mapping[int, tuple[str, Any, Any]] = field(default_factory=dict)
    default_retry: RetryPolicy | None = None
    cancel_requested: bool = False
    # The workflow's timeout as an instant: a suspended run wakes then, to be cancelled.
    deadline: datetime | None = None
    # A run that only waits on timers further away than this many seconds is suspended.
    suspend_after: float = 2.0
    # A wait on a promise or notification whose timeout is closer than this stays in memory
    # (the worker claims suspended tasks this early: suspended, it would be claimed back at
    # once, over and over).
    timer_lead: float = 0.1
    may_suspend: bool = True
    # Replay the history and stop where it ends (new ground), performing nothing: what
    # `durable check` does to test new code against recorded histories.
    replay_only: bool = False
    # The determinism guard (guard.py) on workflow code: WorkflowEnvironment, --strict.
    strict: bool = False


class Host(Protocol):
    """What the engine needs from the worker that runs it."""

    def now(self) -> datetime:
        """The wall clock, UTC-aware."""

    async def sleep(self, seconds: float, *, interruptible: bool = False) -> None:
        """Wait ``seconds`` of the host's clock (a test's virtual clock may skip them).

        ``interruptible``: the caller also waits for a promise, a notification or a child
        and looks again when this returns, so the host may return early (a test's host
        polls, where a worker's run would be suspended and woken).
        """

    async def admit_step(self) -> None:
        """Return once a step's code may start (this worker still holds its tasks)."""

    def call_step(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        label: str,
    ) -> Awaitable[Any]:
        """Run a step's code once (async awaited, sync in a thread); its result. ``label``
        is what the step is recorded under (a test's host mocks steps by it)."""


@dataclass
class RunEnd:
    """How a run ended."""

    value: Any = None
    error: BaseException | None = None
    suspension: Suspension | None = None
    released: bool = False
    # A replay-only run (`RunSpec.replay_only`) made every recorded delivery and stopped.
    replayed: bool = False


class Effect:
    """One issued effect whose outcome the workflow has not received yet."""

    __slots__ = (
        "condition",
        "deadline",
        "future",
        "kind",
        "label",
        "perform",
        "recorded",
        "seq",
        "task",
        "timer",
        "waiting",
    )

    def __init__(
        self,
        seq: int,
        kind: str,
        label: str,
        recorded: Recorded | None,
        perform: Callable[[Effect], Awaitable[Arrival]],
    ) -> None:
        self.seq = seq
        self.kind = kind
        self.label = label
        self.recorded = recorded
        self.perform = perform
        self.future: asyncio.Future[Any] | None = None
        self.timer: DurableTimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.waiting = False
        self.deadline: datetime | None = None
        self.condition = Condition()

    def recorded_outcome(self) -> bool:
        """Its outcome is already recorded (only to be delivered)."""
        return self.recorded is not None and self.recorded.is_final()


_CANCEL = object()  # the cancellation, queued among the arrivals
