"""Task commands: launch, tail, logs, cancel, retry, show, list, events."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import click

import durable
from durable_cli import output
from durable_cli.exit_codes import CommandFailed, ExitCode, for_state
from durable_cli.options import (
    MAX_TASK_ID,
    JsonObject,
    JsonValue,
    WorkflowReference,
    database_url_option,
    json_option,
    task_id_argument,
)
from durable_cli.session import connect, run

RETRYABLE = (durable.TaskState.FAILED, durable.TaskState.CANCELLED)
CANCEL_WAIT = 10.0  # seconds `durable cancel` waits for the task to end, by default
MAX_SEQ = 2**31 - 1  # event seqs are Postgres integers
# Seconds a followed task may wait before `tail` says that no live worker serves its queue.
UNSERVED_WARNING_AFTER = 3.0


@click.command()
@click.option(
    "--tail",
    is_flag=True,
    help="Print the id on stderr, stream the task's log on stdout, exit by its final state.",
)
@click.option(
    "--arg",
    "args",
    multiple=True,
    type=JsonValue(),
    metavar="JSON",
    help="One positional argument, as JSON (repeatable, in order).",
)
@click.option(
    "--kwargs", type=JsonObject(), metavar="JSON", help="Keyword arguments, as a JSON object."
)
@click.option("--key", help="Idempotency key: an existing task with this key is returned.")
@click.option("--queue", help="Queue to run on [default: the workflow's, else 'default'].")
@click.option(
    "--priority",
    type=click.IntRange(-(2**31), 2**31 - 1),
    default=0,
    show_default=True,
    help="Claim order in the queue: smaller first, then launch order.",
)
@click.option(
    "--concurrency-key", help="Key whose slots the task takes (the queue's key concurrency)."
)
@click.argument("name")
@click.argument("workflow", type=WorkflowReference())
@database_url_option
@click.pass_context
def launch(
    ctx: click.Context,
    tail: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    key: str | None,
    queue: str | None,
    priority: int,
    concurrency_key: str | None,
    name: str,
    workflow: str,
) -> int:
    """Create a task NAME running WORKFLOW (module:function); print its id.

    Exit codes with --tail: 0 complete, 1 failed, 3 cancelled.
    """

    # Flow control only when asked for (SPEC 12): a plain launch calls the plain API.
    flow: dict[str, Any] = {}
    if priority:
        flow["priority"] = priority
    if concurrency_key is not None:
        flow["concurrency_key"] = concurrency_key

    async def go() -> int:
        async with connect(ctx) as client:
            try:
                handle = await client.launch(
                    workflow,
                    name=name,
                    args=list(args),
                    kwargs=kwargs,
                    key=key,
                    queue=queue,
                    **flow,
                )
            except ValueError as error:  # the reference's shape, should the checks differ
                raise click.BadParameter(str(error), param_hint="WORKFLOW") from None
            if not tail:
                output.echo_line(str(handle.id))
                return ExitCode.OK
            output.note(str(handle.id))
            return await _follow(client, handle.id)

    return run(go())


@click.command()
@task_id_argument
@database_url_option
@click.pass_context
def tail(ctx: click.Context, task_id: int) -> int:
    """Stream task ID's log from the start until the task is final.

    Exit codes: 0 complete, 1 failed (the error goes to stderr), 3 cancelled.
    """

    async def go() -> int:
        async with connect(ctx) as client:
            return await _follow(client, task_id)

    return run(go())


@click.command()
@task_id_argument
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the task is final.")
@database_url_option
@click.pass_context
def logs(ctx: click.Context, task_id: int, follow: bool) -> int:
    """Print task ID's log; with --follow, the same as `durable tail ID`."""

    async def go() -> int:
        async with connect(ctx) as client:
            if follow:
                return await _follow(client, task_id)
            async for line in client.tail(task_id, follow=False):
                output.echo_line(line)
            return ExitCode.OK

    return run(go())


async def _follow(client: durable.Client, task_id: int) -> int:
    """Stream the log until the task is final; exit code by its final state."""
    watchdog = asyncio.ensure_future(_warn_if_unserved(client, task_id))
    try:
        async for line in client.tail(task_id):
            output.echo_line(line)
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    task = await client.get(task_id)
    if task.state == durable.TaskState.FAILED:
        output.echo_task_error(task)
    elif task.state == durable.TaskState.CANCELLED:
        output.note(f"task {task_id} was cancelled")
    return for_state(task.state)


async def _warn_if_unserved(client: durable.Client, task_id: int) -> None:
    """After a few seconds, one line on stderr if no live worker serves the task's queue.

    Without it, a newcomer who forgot to start a worker (or started it on another queue)
    watches a tail that prints nothing, forever. The tail goes on either way: a worker
    started later picks the task up.
    """
    await asyncio.sleep(UNSERVED_WARNING_AFTER)
    with contextlib.suppress(durable.DurableError):
        task = await client.get(task_id)
        if task.state.is_final or task.state == durable.TaskState.RUNNING:
            return
        if any(task.queue in worker.queues for worker in await client.workers()):
            return
        start = "durable-worker" + ("" if task.queue == "default" else f" --queue {task.queue}")
        output.note(
            f"no live worker serves queue {task.queue!r}: task {task_id} is {task.state.value} "
            f"until one does (start one: {start}); still following"
        )


@click.command()
@task_id_argument
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=CANCEL_WAIT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the task to end (after its cleanup code); 0: do not wait.",
)
@database_url_option
@click.pass_context
def cancel(ctx: click.Context, task_id: int, wait_seconds: float) -> int:
    """Request cancellation of task ID; wait for it to end; print the resulting state.

    A task that never ran is cancelled on the spot. A running or suspended one is woken so that
    its cleanup code runs, then ends `cancelled`; that takes a worker. If it has not ended within
    --wait seconds, the current state is printed and stderr says the task ends `cancelled` once
    a worker runs its cleanup. A final task is left as it is. Exits 0 in all these cases, 2 if
    there is no such task.
    """

    async def go() -> int:
        async with connect(ctx) as client:
            before = (await client.get(task_id)).state
            if before.is_final:
                output.echo_line(before.value)
                output.note(f"task {task_id} is already {before.value}; nothing to cancel")
                return ExitCode.OK
            requested = await client.cancel(task_id)
            state = await _settle(client, task_id, requested, wait_seconds)
        output.echo_line(state.value)
        _explain_cancel(task_id, state)
        return ExitCode.OK

    return run(go())


async def _settle(
    client: durable.Client, task_id: int, state: durable.TaskState, wait_seconds: float
) -> durable.TaskState:
    """The task's state once it is final, or its current state after ``wait_seconds``."""
    if state.is_final or wait_seconds <= 0:
        return state
    try:
        return (await client.wait(task_id, timeout=wait_seconds)).state
    except durable.Timeout:
        return (await client.get(task_id)).state


def _explain_cancel(task_id: int, state: durable.TaskState) -> None:
    """A line on stderr unless the task ended `cancelled`, as asked."""
    if state == durable.TaskState.CANCELLED:
        return
    if state.is_final:
        output.note(
            f"task {task_id} had already ended as {state.value}: the cancellation came too late"
        )
        return
    output.note(
        f"task {task_id} is {state.value}: cancellation requested; it ends cancelled once a "
        "worker runs its cleanup"
    )


@click.command()
@task_id_argument
@database_url_option
@click.pass_context
def retry(ctx: click.Context, task_id: int) -> int:
    """Put failed or cancelled task ID back to pending, keeping its events; print the state.

    Exits 1 if the task is neither failed nor cancelled.
    """

    async def go() -> int:
        async with connect(ctx) as client:
            before = (await client.get(task_id)).state
            if before not in RETRYABLE:
                raise CommandFailed(
                    f"task {task_id} is {before.value}: only failed or cancelled tasks can be "
                    "retried"
                )
            after = await client.retry(task_id)
            output.echo_line(after.value)
            if after != durable.TaskState.PENDING:
                raise CommandFailed(f"task {task_id} was not retried: it is {after.value}")
            return ExitCode.OK

    return run(go())


@click.command()
@task_id_argument
@click.option(
    "--at",
    "seq",
    required=True,
    type=click.IntRange(min=0, max=MAX_SEQ),
    metavar="SEQ",
    help="Copy the events before this seq; the fork runs from there.",
)
@click.option("--name", help="The fork's name [default: '<name> (fork of ID at SEQ)'].")
@database_url_option
@click.pass_context
def fork(ctx: click.Context, task_id: int, seq: int, name: str | None) -> int:
    """Create a task that replays task ID's events before SEQ and runs on; print its id.

    The fork runs the same workflow with the same arguments and queue; the effects recorded
    before SEQ are not performed again. A running task may be forked.
    """

    async def go() -> int:
        async with connect(ctx) as client:
            handle = await client.fork(task_id, at=seq, name=name)
        output.echo_line(str(handle.id))
        return ExitCode.OK

    return run(go())


@click.command()
@task_id_argument
@json_option
@database_url_option
@click.pass_context
def show(ctx: click.Context, task_id: int, as_json: bool) -> int:
    """Show task ID (fields, result or error with traceback) and its event log."""

    async def go() -> int:
        async with connect(ctx) as client:
            task = await client.get(task_id)
            events = await client.events(task_id)
        if as_json:
            output.echo_json(task.to_json() | {"events": [e.to_json() for e in events]})
            return ExitCode.OK
        click.echo(output.task_details(task))
        click.echo()
        click.echo(
            output.table((*output.EVENT_COLUMNS, "at"), output.event_rows(events, with_time=True))
        )
        return ExitCode.OK

    return run(go())


@click.command()
@task_id_argument
@json_option
@database_url_option
@click.pass_context
def events(ctx: click.Context, task_id: int, as_json: bool) -> int:
    """Print task ID's event log alone, in seq order."""

    async def go() -> int:
        async with connect(ctx) as client:
            recorded = await client.events(task_id)
        if as_json:
            output.echo_json([e.to_json() for e in recorded])
        else:
            click.echo(
                output.table(output.EVENT_COLUMNS, output.event_rows(recorded, with_time=False))
            )
        return ExitCode.OK

    return run(go())


@click.command(name="list")
@click.option(
    "--state",
    type=click.Choice([s.value for s in durable.TaskState], case_sensitive=False),
    help="Only tasks in this state.",
)
@click.option("--workflow", metavar="MODULE:FUNCTION", help="Only tasks of this workflow.")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=MAX_TASK_ID),  # a bigint, like task ids
    default=50,
    show_default=True,
    help="At most this many tasks.",
)
@json_option
@database_url_option
@click.pass_context
def list_tasks(
    ctx: click.Context, state: str | None, workflow: str | None, limit: int, as_json: bool
) -> int:
    """List tasks, newest first."""

    async def go() -> int:
        async with connect(ctx) as client:
            tasks = await client.list_tasks(
                state=state.lower() if state else None, workflow=workflow, limit=limit
            )
        if as_json:
            output.echo_json([t.to_json() for t in tasks])
        else:
            click.echo(output.table(output.TASK_COLUMNS, output.task_rows(tasks)))
        return ExitCode.OK

    return run(go())


COMMANDS = (launch, tail, logs, cancel, retry, fork, show, list_tasks, events)
