"""OpenTelemetry spans for task runs and effects (extra ``durable-engine[otel]``).

Tracing is on when ``opentelemetry`` is importable and the application has set a tracer
provider (``trace.set_tracer_provider(...)``); otherwise every function here returns what it
was given, so that a worker that nobody traces pays one check per call.

- `launch_context` serialises the caller's current context (W3C ``traceparent`` and
  ``tracestate``) when a task is launched; the store keeps it in ``durable.tasks.trace``.
- `traced_run` wraps one run of a task in a ``durable.run`` span whose parent is that stored
  context (or the nearest ancestor task's, so a child launched by a workflow joins its
  parent's trace). Every run of the task (after a suspension, a crash, a retry) is a span of
  the same trace.
- `traced_step` and `traced` give each step attempt, transaction and child launch a span
  under the current run's span.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from durable.store.records import ClaimedTask
    from durable.store.store import Store

try:  # the otel extra
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    propagate = trace = None  # type: ignore[assignment]

T = TypeVar("T")
P = ParamSpec("P")

TRACER_NAME = "durable"


def enabled() -> bool:
    """Whether spans are made: the extra is installed and a tracer provider is set."""
    return trace is not None and not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider
    )


def launch_context() -> str | None:
    """The caller's current trace context as JSON, to store with a task (None: nothing to
    continue)."""
    if not enabled() or not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return json.dumps(carrier) if carrier else None


def traced_run(
    store: Store, claimed: ClaimedTask, run: Coroutine[Any, Any, T]
) -> Coroutine[Any, Any, T]:
    """``run`` (one run of a claimed task) inside a ``durable.run`` span when tracing is on."""
    if not enabled():
        return run
    return _run_span(store, claimed, run)


async def _run_span(store: Store, claimed: ClaimedTask, run: Coroutine[Any, Any, T]) -> T:
    stored = await store.task_trace(claimed.id)
    parent = propagate.extract(json.loads(stored)) if stored else None
    tracer = trace.get_tracer(TRACER_NAME)
    attributes: dict[str, str | int] = {
        "durable.task_id": claimed.id,
        "durable.workflow": claimed.workflow,
        "durable.task_name": claimed.name,
        "durable.attempt": claimed.attempts,
    }
    with tracer.start_as_current_span(
        f"durable.run {claimed.workflow}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ):
        return await run


def traced_step(fn: Callable[..., Any], step: Awaitable[T]) -> Awaitable[T]:
    """One attempt of a step's code inside a ``durable.step`` span when tracing is on."""
    if not enabled():
        return step
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return _span(f"durable.step {name}", {"durable.step": name}, step)


async def _span(name: str, attributes: dict[str, Any], body: Awaitable[T]) -> T:
    with trace.get_tracer(TRACER_NAME).start_as_current_span(name, attributes=attributes):
        return await body


def traced(
    name: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorate an async method of the worker's journal: a span ``name`` around each call."""

    def decorate(
        method: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(method)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            if not enabled():
                return await method(*args, **kwargs)
            with trace.get_tracer(TRACER_NAME).start_as_current_span(name):
                return await method(*args, **kwargs)

        return wrapper

    return decorate
