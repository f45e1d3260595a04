"""Drive the replay engine without a database: a journal that is a list."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from durable.context import Context
from durable.replay import capture, effects
from durable.replay.engine import Engine, RunSpec
from durable.replay.journal import NewEvent, Recorded, Writes
from durable.worker.steps import StepHost


@dataclass
class ListJournal:
    """Keeps what the engine writes: events by seq (last write wins) and log lines."""

    events: dict[int, Recorded] = field(default_factory=dict)
    lines: dict[int, str] = field(default_factory=dict)
    round_trips: int = 0
    # Every durable write in order: a crash leaves some prefix of them (`prefix`).
    batches: list[Writes] = field(default_factory=list)

    async def write(self, writes: Writes) -> None:
        self.round_trips += 1
        self.absorb(writes)

    def absorb(self, writes: Writes) -> None:
        import json

        self.batches.append(writes)
        for event in writes.events:
            self.events[event.seq] = Recorded(
                event.seq, event.kind, event.label, json.loads(event.payload)
            )
        for line_no, line in writes.lines:
            self.lines.setdefault(line_no, line)

    async def transaction(self, seq: int, kind: str, label: str, body: Any) -> Any:
        import json

        from durable.replay.journal import Writes

        payload = {"status": "ok", "value": await body(None)}
        self.round_trips += 1
        self.absorb(Writes(events=[NewEvent(seq, kind, label, json.dumps(payload))]))
        return payload

    def prefix(self, count: int) -> ListJournal:
        """A journal holding the first ``count`` writes: what a crash then would leave."""
        journal = ListJournal()
        for writes in self.batches[:count]:
            journal.absorb(writes)
        return journal

    def history(self) -> list[Recorded]:
        return [self.events[seq] for seq in sorted(self.events)]

    def log(self) -> list[str]:
        return [self.lines[n] for n in sorted(self.lines)]


async def run(
    workflow: Callable[..., Awaitable[Any]],
    journal: ListJournal,
    *args: Any,
    name: str = "test",
    cancel_requested: bool = False,
    on_start: Callable[[Engine], None] | None = None,
    strict: bool = False,
) -> Any:
    """One run of ``workflow`` against ``journal``'s history, as the worker's runner does it.

    ``on_start`` gets the engine before the run starts (to schedule a cancellation, say).
    """
    capture.install()
    spec = RunSpec(
        task_id=1,
        name=name,
        workflow="tests:workflow",
        history=tuple(journal.history()),
        log_lines=len(journal.lines),
        may_suspend=False,
        cancel_requested=cancel_requested,
        strict=strict,
    )
    engine = Engine(spec, journal, StepHost())
    if on_start is not None:
        on_start(engine)
    loop = asyncio.get_running_loop()
    task_log = capture.TaskLog(engine, loop)
    context = contextvars.copy_context()
    context.run(effects.current_engine.set, engine)
    context.run(capture.current_log.set, task_log)
    try:
        end = await engine.run(workflow(Context(engine), *args), context)
        if end.error is None:
            engine.check_history_consumed()
    finally:
        task_log.flush_partial()
        await engine.close()
        journal.absorb(await engine.drain())
        engine.dispose()
    if engine.nondeterminism is not None:
        raise engine.nondeterminism
    if end.error is not None:
        raise end.error
    return end.value
