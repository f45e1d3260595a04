"""Replaying recorded histories against the code at hand, performing and writing nothing.

`durable check` and `WorkflowEnvironment.check_replay` are built on `replay`: it runs the
workflow of a `History` on the replay engine with ``RunSpec.replay_only`` set, so the run
makes every recorded delivery again and stops where the history ends (new ground), before
any effect would be performed. Its journal drops what the engine would write, and its host
refuses to run step code: nothing reaches the database or the world.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from durable.context import Context
from durable.errors import DurableError, NonDeterminismError
from durable.models import Event, TaskInfo
from durable.replay import capture, effects
from durable.replay.engine import Engine, RunSpec, utcnow
from durable.replay.history import Recorded
from durable.replay.journal import Writes
from durable.worker.loader import Loader

FORMAT = "durable-history/1"


class BadHistory(DurableError):
    """A history document that cannot be read."""


@dataclass(frozen=True)
class History:
    """One task's recorded history: what `durable export` writes and `durable check` reads."""

    task_id: int
    name: str
    workflow: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    state: str | None = None
    result: Any = None
    events: tuple[Recorded, ...] = ()

    @classmethod
    def of_task(cls, info: TaskInfo, events: Iterable[Event]) -> History:
        """The history of a task as read from the database."""
        return cls(
            task_id=info.id,
            name=info.name,
            workflow=info.workflow,
            args=list(info.args),
            kwargs=dict(info.kwargs),
            state=info.state.value,
            result=info.result,
            events=tuple(Recorded(e.seq, e.kind, e.label, e.payload) for e in events),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON document (`durable export`)."""
        return {
            "format": FORMAT,
            "task_id": self.task_id,
            "name": self.name,
            "workflow": self.workflow,
            "args": self.args,
            "kwargs": self.kwargs,
            "state": self.state,
            "result": self.result,
            "events": [
                {"seq": e.seq, "kind": e.kind, "label": e.label, "payload": e.payload}
                for e in self.events
            ],
        }

    @classmethod
    def from_json(cls, document: Any, where: str = "history") -> History:
        """Read a document written by `to_json`.

        Raises:
            BadHistory: it is not one (naming ``where`` and what is wrong).
        """
        try:
            if not isinstance(document, Mapping):
                raise TypeError("not a JSON object")
            events = tuple(
                Recorded(int(e["seq"]), str(e["kind"]), str(e["label"]), e["payload"])
                for e in document["events"]
            )
            args = document.get("args") or []
            kwargs = document.get("kwargs") or {}
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise TypeError("args must be a list and kwargs an object")
            return cls(
                task_id=int(document.get("task_id", 0)),
                name=str(document.get("name", "")),
                workflow=str(document["workflow"]),
                args=args,
                kwargs=kwargs,
                state=document.get("state"),
                result=document.get("result"),
                events=events,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BadHistory(
                f"{where}: not a durable history ({type(error).__name__}: {error})"
            ) from None

    @classmethod
    def load(cls, path: str) -> History:
        """Read a file written by `durable export`."""
        try:
            with open(path, encoding="utf-8") as file:
                document = json.load(file)
        except (OSError, ValueError) as error:
            raise BadHistory(f"{path}: {error}") from None
        return cls.from_json(document, path)


@dataclass(frozen=True)
class Replayed:
    """How a history replayed: ``divergence`` is None when the code follows it."""

    history: History
    divergence: NonDeterminismError | None = None
    # The workflow could not be run at all (not importable, arguments that do not fit).
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The code replays the history."""
        return self.divergence is None and self.error is None


class _DiscardingJournal:
    """Takes the engine's writes and drops them. A replay-only run stops before any effect
    is performed, so nothing else of the journal is ever called."""

    async def write(self, writes: Writes) -> None:
        del writes

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"a replay performs nothing (journal.{name})")


class _RefusingHost:
    """The clock, and no step code: a replay-only run never performs one."""

    def now(self) -> datetime:
        return utcnow()

    async def sleep(self, seconds: float, *, interruptible: bool = False) -> None:
        raise RuntimeError("a replay performs nothing (sleep)")

    async def admit_step(self) -> None:
        raise RuntimeError("a replay performs nothing (step)")

    def call_step(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        label: str,
    ) -> Awaitable[Any]:
        raise RuntimeError("a replay performs nothing (step)")


async def replay(history: History, loader: Loader) -> Replayed:
    """Replay ``history`` against the workflow ``loader`` finds for it (run on any loop)."""
    try:
        workflow = loader.load(history.workflow)
    except DurableError as error:
        return Replayed(history, error=str(error))
    capture.install()  # what the workflow prints goes to the (discarding) task log
    spec = RunSpec(
        task_id=history.task_id,
        name=history.name,
        workflow=history.workflow,
        history=history.events,
        default_retry=workflow.options.retry,
        may_suspend=False,
        replay_only=True,
    )
    engine = Engine(spec, _DiscardingJournal(), _RefusingHost())
    context = contextvars.copy_context()
    context.run(effects.current_engine.set, engine)
    context.run(capture.current_log.set, capture.TaskLog(engine, asyncio.get_running_loop()))
    try:
        coroutine = workflow.fn(Context(engine), *history.args, **history.kwargs)
    except TypeError as error:
        return Replayed(history, error=f"the arguments do not fit the workflow: {error}")
    end = await engine.run(coroutine, context)
    if not end.replayed and end.error is None:
        engine.check_history_consumed()
    await engine.close()
    await engine.drain()
    return Replayed(history, divergence=engine.nondeterminism)


def default_loader(app_dir: str, allow_modules: tuple[str, ...] = ()) -> Loader:
    """A loader for the code under ``app_dir`` (and ``allow_modules`` prefixes), under the
    worker's import policy."""
    return Loader(allow_modules, app_dir=app_dir)
