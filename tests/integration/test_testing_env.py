"""durable.testing.WorkflowEnvironment (SPEC 11): worker, mocks, virtual clock, replay checks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import History, ReplayCheckFailed, WorkflowEnvironment, replay
from durable.testing.replayer import default_loader
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import poll_until
from tests.integration import kit_workflows as flows

DAY = flows.DAY


async def _wait_for_event(env: WorkflowEnvironment, task: Any, kind: str) -> None:
    """Until the task has recorded an event of ``kind`` (the workflow reached that wait)."""

    async def recorded() -> bool:
        return any(e.kind == kind for e in await env.history(task))

    await poll_until(recorded, f"a {kind} event recorded")


async def test_a_day_of_sleep_is_skipped_and_the_mock_stands_in_for_the_step(
    database_server_url: str,
) -> None:
    async with WorkflowEnvironment(time_skipping=True, database_url=database_server_url) as env:
        charged = env.mock_step(flows.charge, returns={"charge_id": "ch_test"})
        before = env.now()
        task = await env.launch(flows.checkout, "o-1", 1999)
        await env.resolve("approve-o-1", {"by": "ana"})
        result = await env.result(task, timeout=10)
        assert result["receipt"] == {"charge_id": "ch_test"}
        assert result["note"] == "o-1: a day later"
        assert result["approval"] == {"by": "ana"}
        assert DAY <= result["waited"] < DAY + 60  # ctx.now() followed the virtual clock
        assert (env.now() - before).total_seconds() >= DAY
        charged.assert_called_once_with("o-1", 1999)
        kinds = [(e.kind, e.label) for e in await env.history(task)]
        assert kinds[:3] == [("now", "now"), ("step", "charge"), ("sleep", "sleep")]


async def test_several_days_and_retry_backoffs_are_skipped(database_server_url: str) -> None:
    async with WorkflowEnvironment(time_skipping=True, database_url=database_server_url) as env:
        declined = env.mock_step("charge", raises=flows.Declined("no funds"))
        sleepy = await env.launch(flows.sleepy, 3)
        retried = await env.launch(flows.retries)
        assert await env.result(retried, timeout=10) == "Declined"
        assert 3 * DAY <= await env.result(sleepy, timeout=10) < 3 * DAY + 60
        assert declined.call_count == 3  # the hour and two hours between attempts: skipped
        assert declined.calls[0].args == ("o-r", 5)


async def test_a_side_effect_list_answers_call_by_call(database_server_url: str) -> None:
    async with WorkflowEnvironment(time_skipping=True, database_url=database_server_url) as env:
        mock = env.mock_step(flows.charge, side_effect=[flows.Declined("once"), {"id": 7}])
        task = await env.launch(flows.retries)
        assert await env.result(task, timeout=10) == {"id": 7}
        assert mock.call_count == 2
        with pytest.raises(AssertionError, match="expected to be called once"):
            mock.assert_called_once()


async def test_advance_moves_the_clock_by_hand(database_server_url: str) -> None:
    async with WorkflowEnvironment(database_url=database_server_url) as env:
        task = await env.launch(flows.approval, "o-2")
        await _wait_for_event(env, task, "promise")
        await env.advance(DAY)
        assert await env.result(task, timeout=10) == "expired"


async def test_time_skipping_waits_while_a_task_waits_for_a_promise(
    database_server_url: str,
) -> None:
    """A promise with a day's timeout is not only a timer: the clock does not jump past it."""
    async with WorkflowEnvironment(time_skipping=True, database_url=database_server_url) as env:
        task = await env.launch(flows.approval, "o-3")
        sleeper = await env.launch(flows.sleepy, 1)
        await _wait_for_event(env, task, "promise")
        await env.resolve("approve-o-3", "yes")
        assert await env.result(task, timeout=10) == "yes"
        # With the approval done, the other task's day is skipped.
        assert await env.result(sleeper, timeout=10) >= DAY


async def test_check_replay_replays_concurrent_shapes_from_every_crash_point(
    database_server_url: str,
) -> None:
    async with WorkflowEnvironment(time_skipping=True, database_url=database_server_url) as env:
        task = await env.launch(flows.racer)
        assert await env.result(task, timeout=10) == [
            "b: done",
            "c: done",
            "a: done",
            "timed out",
            "True",
        ]
        runs = await env.check_replay(task)
        events = await env.history(task)
        deliveries = sum(
            1 for e in events if isinstance(e.payload, dict) and "delivered" in e.payload
        )
        assert runs == deliveries + 1


async def test_check_replay_fails_when_the_code_changed(database_server_url: str) -> None:
    async with WorkflowEnvironment(database_url=database_server_url) as env:
        task = await env.launch(flows.fickle)
        assert await env.result(task, timeout=10) == "f: second"
        assert await env.check_replay(task) == 3
        flows.FLAGS["changed"] = True
        try:
            with pytest.raises(ReplayCheckFailed, match="seq 1: recorded step 'notify_customer'"):
                await env.check_replay(task)
        finally:
            flows.FLAGS["changed"] = False


async def test_environments_do_not_see_each_other(database_server_url: str) -> None:
    async def one(order: str) -> tuple[int, list[int]]:
        async with WorkflowEnvironment(database_url=database_server_url) as env:
            env.mock_step(flows.charge, returns=order)
            task = await env.launch(flows.retries)
            assert await env.result(task, timeout=10) == order
            return task.id, [t.id for t in await env.client.list_tasks()]

    (first, seen_first), (second, seen_second) = await asyncio.gather(one("x"), one("y"))
    assert seen_first == [first] and seen_second == [second]


async def test_an_unmocked_step_runs_its_code(database_server_url: str) -> None:
    async with WorkflowEnvironment(time_skipping=True, database_url=database_server_url) as env:
        task = await env.launch(flows.retries)  # the real charge raises AssertionError
        assert await env.result(task, timeout=10) == "AssertionError"
        with pytest.raises(durable.TaskNotFound):
            await env.result(424242, timeout=1)


def _guarded_line() -> str:
    source = Path(flows.__file__).read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if "guard refuses this line" in text)
    return f"{flows.__file__}:{line}"


async def test_the_environment_always_guards_workflow_code(database_server_url: str) -> None:
    async with WorkflowEnvironment(database_url=database_server_url) as env:
        task = await env.launch(flows.peeks_at_the_clock)
        with pytest.raises(durable.TaskFailed) as failed:
            await env.result(task, timeout=10)
        assert "DeterminismViolation" in str(failed.value)
        assert f"time.time() in workflow code at {_guarded_line()}" in str(failed.value)


async def test_durable_worker_strict_guards_and_plain_does_not(db_url: str) -> None:
    reference = "tests.integration.kit_workflows:peeks_at_the_clock"
    async with durable.Client(db_url) as client:
        for flags, state in ((("--strict",), "failed"), ((), "complete")):
            task = await client.launch(reference)
            worker = await WorkerProcess(db_url, *flags).start()
            try:
                info = await client.wait(task.id, timeout=20)
            finally:
                await worker.stop()
            assert info.state == state
            if state == "failed":
                assert info.error is not None
                assert info.error["type"] == "DeterminismViolation"
                assert _guarded_line() in info.error["message"]


async def test_a_cancelled_task_replays_and_checks(database_server_url: str) -> None:
    """The cancellation marker lands at the same wait on replay, from the file and in memory."""
    async with WorkflowEnvironment(database_url=database_server_url) as env:
        task = await env.launch(flows.sleepy, 2)
        await _wait_for_event(env, task, "sleep")
        await env.client.cancel(task.id)
        with pytest.raises(durable.TaskCancelled):
            await env.result(task, timeout=10)
        kinds = [e.kind for e in await env.history(task)]
        assert "cancel" in kinds
        replayed = await replay(
            History.of_task(await env.client.get(task.id), await env.history(task)),
            default_loader("."),
        )
        assert replayed.ok, replayed
        assert await env.check_replay(task) >= 2


async def test_a_parent_waiting_on_sleeping_children_does_not_hold_the_clock(
    database_server_url: str,
) -> None:
    async with WorkflowEnvironment(time_skipping=True, database_url=database_server_url) as env:
        task = await env.launch(flows.parent)
        one, two = await env.result(task, timeout=10)
        assert DAY <= one < DAY + 60 and 2 * DAY <= two < 2 * DAY + 60
        await env.check_replay(task)
