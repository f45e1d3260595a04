"""SPEC 13: OpenTelemetry spans for task runs and effects, continuing the launcher's trace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import durable
from durable import tracing

WF = "tests.acceptance.workflows_server"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """A tracer provider for this process that keeps finished spans in memory.

    OpenTelemetry lets a process set its provider once; the teardown resets the globals the
    way OpenTelemetry's own test helpers do, so that other tests run untraced.
    """
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    try:
        yield memory
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None
        assert not tracing.enabled()


async def test_runs_and_effects_are_spans_of_the_launchers_trace(
    db_url: str, exporter: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("test")
    async with durable.Client(db_url) as client, durable.Worker(db_url, concurrency=4):
        with tracer.start_as_current_span("checkout request") as request:
            task = await client.launch(f"{WF}:traced_parent", args=["o-7"])
        assert await client.result(task.id, timeout=30) == 9
    spans = exporter.get_finished_spans()
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in spans if s.context is not None} == {trace_id}

    parent_runs = by_name[f"durable.run {WF}:traced_parent"]
    # One run, or two when the parent suspended while its child ran: each a span of the trace.
    assert len(parent_runs) in (1, 2)
    root_id = request.get_span_context().span_id
    assert all(run.parent is not None and run.parent.span_id == root_id for run in parent_runs)
    assert parent_runs[0].attributes is not None
    assert parent_runs[0].attributes["durable.task_id"] == task.id

    [child_run] = by_name[f"durable.run {WF}:child"]
    assert child_run.parent is not None and child_run.parent.span_id == root_id
    first_run_id = parent_runs[0].context.span_id if parent_runs[0].context else None
    for effect in ("durable.step check", "durable.transaction", "durable.child.launch"):
        [span] = by_name[effect]
        assert span.parent is not None and span.parent.span_id == first_run_id, effect


async def test_without_a_tracer_provider_nothing_is_stored(db_url: str) -> None:
    assert not tracing.enabled()
    async with durable.Client(db_url) as client:
        task = await client.launch(f"{WF}:child", args=[2])
        assert await client.store.task_trace(task.id) is None
