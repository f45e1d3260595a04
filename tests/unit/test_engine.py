"""The replay engine against a list journal: numbering, matching, recorded outcomes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable.replay.journal import Recorded, Writes
from tests.unit.harness import ListJournal, run


async def test_a_recorded_step_is_not_run_again() -> None:
    calls: list[int] = []

    def charge(amount: int) -> dict[str, int]:
        calls.append(amount)
        return {"charged": amount}

    async def workflow(ctx: durable.Context) -> Any:
        return await ctx.step(charge, 10)

    journal = ListJournal()
    assert await run(workflow, journal) == {"charged": 10}
    assert await run(workflow, journal) == {"charged": 10}
    assert calls == [10]
    assert journal.events[0].kind == "step"
    assert journal.events[0].label.endswith("charge")


async def test_concurrent_effects_are_numbered_in_issue_order() -> None:
    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "slow"

    async def fast() -> str:
        return "fast"

    async def workflow(ctx: durable.Context) -> Any:
        return await asyncio.gather(ctx.step(slow), ctx.step(fast))

    journal = ListJournal()
    assert await run(workflow, journal) == ["slow", "fast"]
    assert [journal.events[s].payload["value"] for s in (0, 1)] == ["slow", "fast"]
    # replay returns the same values by seq although "fast" was recorded first
    assert await run(workflow, journal) == ["slow", "fast"]


async def test_replay_that_asks_for_another_effect_is_nondeterminism() -> None:
    async def workflow(ctx: durable.Context) -> Any:
        return await ctx.step(lambda: 1, name="first")

    async def changed(ctx: durable.Context) -> Any:
        return await ctx.step(lambda: 2, name="second")

    journal = ListJournal()
    await run(workflow, journal)
    with pytest.raises(durable.NonDeterminismError) as caught:
        await run(changed, journal)
    assert caught.value.seq == 0
    assert "first" in caught.value.recorded
    assert "second" in caught.value.requested


async def test_swallowed_nondeterminism_still_fails_the_run() -> None:
    async def workflow(ctx: durable.Context) -> Any:
        return await ctx.step(lambda: 1, name="first")

    async def sneaky(ctx: durable.Context) -> Any:
        try:
            await ctx.step(lambda: 2, name="second")
        except Exception:
            return "swallowed"

    journal = ListJournal()
    await run(workflow, journal)
    with pytest.raises(durable.NonDeterminismError):
        await run(sneaky, journal)


async def test_fewer_effects_than_recorded_is_nondeterminism() -> None:
    async def two(ctx: durable.Context) -> None:
        await ctx.step(lambda: 1, name="a")
        await ctx.step(lambda: 2, name="b")

    async def one(ctx: durable.Context) -> None:
        await ctx.step(lambda: 1, name="a")

    journal = ListJournal()
    await run(two, journal)
    with pytest.raises(durable.NonDeterminismError) as caught:
        await run(one, journal)
    assert caught.value.seq == 1


async def test_step_failure_is_recorded_and_raised_again_on_replay() -> None:
    calls: list[int] = []

    def boom() -> None:
        calls.append(1)
        raise ValueError("card declined")

    async def workflow(ctx: durable.Context) -> str:
        try:
            await ctx.step(boom)
        except durable.StepFailed as failure:
            assert failure.error_message == failure.message  # the older name of the same
            return f"{failure.error_type}: {failure.message}"
        return "no failure"

    journal = ListJournal()
    assert await run(workflow, journal) == "ValueError: card declined"
    assert await run(workflow, journal) == "ValueError: card declined"
    assert calls == [1]


async def test_step_failed_carries_the_step_errors_type_and_message() -> None:
    def boom() -> None:
        raise ValueError("card declined")

    async def workflow(ctx: durable.Context) -> None:
        await ctx.step(boom, name="charge")

    journal = ListJournal()
    for _ in range(2):  # the first run, then replay
        with pytest.raises(durable.StepFailed) as caught:
            await run(workflow, journal)
        assert (caught.value.error_type, caught.value.message) == ("ValueError", "card declined")
        assert str(caught.value) == "step 'charge' failed: ValueError: card declined"


async def test_retries_are_recorded_and_survive_a_restart() -> None:
    attempts: list[int] = []
    policy = durable.RetryPolicy(max_attempts=3, initial_interval=0.01, backoff=1.0)

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    async def workflow(ctx: durable.Context) -> Any:
        return await ctx.step(flaky, retry=policy)

    # A first run that "crashes" after the first failed attempt was recorded.
    journal = ListJournal()
    journal.events[0] = Recorded(
        0,
        "step",
        flaky.__qualname__,
        {
            "status": "retrying",
            "attempts": 1,
            "next_at": "2000-01-01T00:00:00+00:00",
            "error_type": "ConnectionError",
            "message": "try again",
        },
    )
    attempts.append(1)  # the attempt the crashed run made
    assert await run(workflow, journal) == "ok"
    assert len(attempts) == 3  # one before the crash, two after: never more than max_attempts
    assert journal.events[0].payload == {
        "status": "ok",
        "value": "ok",
        "attempts": 3,
        "delivered": 0,
    }


async def test_non_retryable_errors_fail_at_once() -> None:
    attempts: list[int] = []
    policy = durable.RetryPolicy(max_attempts=5, initial_interval=0.0, non_retryable=["KeyError"])

    def lookup() -> None:
        attempts.append(1)
        raise KeyError("missing")

    async def workflow(ctx: durable.Context) -> None:
        await ctx.step(lookup, retry=policy)

    with pytest.raises(durable.StepFailed):
        await run(workflow, ListJournal())
    assert len(attempts) == 1


async def test_step_timeout_counts_as_a_failed_attempt() -> None:
    async def hang() -> None:
        await asyncio.sleep(10)

    async def workflow(ctx: durable.Context) -> None:
        await ctx.step(hang, timeout=0.05)

    with pytest.raises(durable.StepFailed) as caught:
        await run(workflow, ListJournal())
    assert caught.value.error_type == "TimeoutError"


async def test_a_result_that_is_not_json_fails_the_step_without_retry() -> None:
    attempts: list[int] = []

    def make_set() -> set[int]:
        attempts.append(1)
        return {1, 2}

    async def workflow(ctx: durable.Context) -> None:
        await ctx.step(make_set, name="make_set", retry=durable.RetryPolicy(max_attempts=3))

    journal = ListJournal()
    with pytest.raises(durable.SerializationError) as caught:
        await run(workflow, journal)
    assert "set" in str(caught.value) and "make_set" in str(caught.value)
    assert attempts == [1]
    # "the step fails": it is a StepFailed too, on replay as on the first run
    with pytest.raises(durable.StepFailed) as failed:
        await run(workflow, journal)
    assert isinstance(failed.value, durable.SerializationError)
    assert failed.value.error_type == "SerializationError"
    assert "set" in failed.value.message and "make_set" in failed.value.message
    assert attempts == [1]


async def test_ctx_log_writes_lines_like_a_logger_once() -> None:
    async def workflow(ctx: durable.Context) -> None:
        ctx.log.info("charged %s cents", 1999)
        ctx.log.info("plain")
        await ctx.step(lambda: None, name="step")
        ctx.log.warning("slow provider", provider="acme")
        ctx.log.error("two\nlines")

    journal = ListJournal()
    await run(workflow, journal)
    await run(workflow, journal)
    assert journal.log() == [
        "charged 1999 cents",
        "plain",
        "WARNING: slow provider provider='acme'",
        "ERROR: two",
        "lines",
    ]


async def test_now_random_uuid_are_the_same_on_replay() -> None:
    async def workflow(ctx: durable.Context) -> list[str]:
        values = [ctx.now().isoformat(), repr(ctx.random()), str(ctx.uuid4())]
        await ctx.step(lambda: None, name="after")
        return values

    journal = ListJournal()
    first = await run(workflow, journal)
    assert await run(workflow, journal) == first
    assert first[0].endswith("+00:00")


async def test_values_handed_out_are_recorded_before_a_step_runs() -> None:
    seen: list[int] = []

    async def workflow(ctx: durable.Context, journal: ListJournal) -> None:
        ctx.random()
        await ctx.step(lambda: seen.append(len(journal.events)), name="look")

    journal = ListJournal()
    await run(workflow, journal, journal)
    assert seen == [1]  # the random draw was durable before the step's code ran


async def test_printed_lines_are_written_once() -> None:
    async def workflow(ctx: durable.Context) -> None:
        print(f"Hello, {ctx.name}!")
        await ctx.step(lambda: print("inside the step"), name="step")
        print("bye", end="")

    journal = ListJournal()
    await run(workflow, journal, name="ana")
    await run(workflow, journal, name="ana")
    assert journal.log() == ["Hello, ana!", "inside the step", "bye"]


async def test_concurrent_tasks_do_not_mix_their_output() -> None:
    async def workflow(ctx: durable.Context, who: str) -> None:
        for i in range(20):
            print(f"{who} {i}")
            await asyncio.sleep(0)

    journals = [ListJournal(), ListJournal()]
    await asyncio.gather(run(workflow, journals[0], "a"), run(workflow, journals[1], "b"))
    assert journals[0].log() == [f"a {i}" for i in range(20)]
    assert journals[1].log() == [f"b {i}" for i in range(20)]


async def test_sleep_records_its_deadline_and_replay_does_not_wait_again() -> None:
    async def workflow(ctx: durable.Context) -> None:
        await ctx.sleep(0.05)

    journal = ListJournal()
    await run(workflow, journal)
    assert journal.events[0].kind == "sleep"
    loop = asyncio.get_running_loop()
    started = loop.time()
    await run(workflow, journal)
    assert loop.time() - started < 0.05


async def test_step_decorator_is_a_plain_call_outside_workflows() -> None:
    @durable.step
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8

    async def workflow(ctx: durable.Context) -> int:
        return int(await double(5))

    journal = ListJournal()
    assert await run(workflow, journal) == 10
    assert journal.events[0].label.endswith("double")


async def test_effects_share_round_trips() -> None:
    async def workflow(ctx: durable.Context) -> None:
        ctx.now()
        ctx.random()
        print("a line")
        await asyncio.gather(*(ctx.step(lambda: 1, name=f"s{i}") for i in range(10)))

    journal = ListJournal()
    await run(workflow, journal)
    assert len(journal.events) == 12
    assert journal.round_trips < 12


async def test_patched_keeps_old_histories_on_the_old_path() -> None:
    async def before(ctx: durable.Context) -> str:
        await ctx.step(lambda: "a", name="a")
        return str(await ctx.step(lambda: "b", name="b"))

    async def after(ctx: durable.Context) -> str:
        await ctx.step(lambda: "a", name="a")
        if ctx.patched("new-step"):
            await ctx.step(lambda: "n", name="new")
        return str(await ctx.step(lambda: "b", name="b"))

    old = ListJournal()
    await run(before, old)
    assert await run(after, old) == "b"  # replays the old history: no NonDeterminismError
    assert [e.label for e in old.history()] == ["a", "b"]

    fresh = ListJournal()
    await run(after, fresh)
    assert [e.kind for e in fresh.history()] == ["step", "patch", "step", "step"]
    assert await run(after, fresh) == "b"  # and the patched history replays on the new path


async def test_a_step_then_return_costs_no_write_of_its_own() -> None:
    """The final write carries the last step's outcome (Engine.buffer_soon)."""

    async def workflow(ctx: durable.Context) -> int:
        return int(await ctx.step(lambda: 7, name="only"))

    journal = ListJournal()
    assert await run(workflow, journal) == 7
    assert journal.round_trips == 0  # the harness's final drain wrote it
    assert journal.events[0].payload["value"] == 7


async def test_a_step_outcome_is_written_before_the_next_step_runs() -> None:
    seen: list[bool] = []
    journal = ListJournal()

    def second() -> None:
        seen.append(0 in journal.events)

    async def workflow(ctx: durable.Context) -> None:
        await ctx.step(lambda: 1, name="first")
        await ctx.step(second, name="second")

    await run(workflow, journal)
    assert seen == [True]


async def test_a_step_outcome_is_written_soon_while_the_workflow_goes_on_computing() -> None:
    class SignallingJournal(ListJournal):
        """Says when a write arrives, so the workflow below can wait for it."""

        def __init__(self) -> None:
            super().__init__()
            self.wrote = asyncio.Event()

        async def write(self, writes: Writes) -> None:
            await super().write(writes)
            self.wrote.set()

    journal = SignallingJournal()

    async def workflow(ctx: durable.Context) -> None:
        await ctx.step(lambda: 1, name="first")
        # Workflow code that takes a while without an effect: only the background flush
        # (Engine.buffer_soon) can write the step's result meanwhile.
        async with asyncio.timeout(5):
            await journal.wrote.wait()

    await run(workflow, journal)
    assert journal.round_trips == 1 and journal.events[0].payload["value"] == 1


async def test_gather_of_helpers_replays_in_the_order_outcomes_arrived() -> None:
    """The issue 8 case: helpers awaiting two steps each, the first steps finishing in reverse
    order. A replay hands them back in that order, so the second steps keep their seqs."""
    done: dict[int, asyncio.Event] = {i: asyncio.Event() for i in range(3)}
    calls: list[str] = []

    async def first(i: int) -> int:
        calls.append(f"f{i}")
        if i < 2:
            await done[i + 1].wait()  # 2 finishes first, then 1, then 0
        done[i].set()
        return i * 10

    async def second(a: int) -> int:
        calls.append(f"g{a}")
        return a + 1

    async def helper(ctx: durable.Context, i: int) -> int:
        a = await ctx.step(first, i, name="f")
        return await ctx.step(second, a, name="g")

    async def workflow(ctx: durable.Context) -> list[int]:
        return list(await asyncio.gather(*(helper(ctx, i) for i in range(3))))

    journal = ListJournal()
    assert await run(workflow, journal) == [1, 11, 21]
    labels = [journal.events[s].label for s in sorted(journal.events)]
    assert labels == ["f", "f", "f", "g", "g", "g"]
    assert [journal.events[s].payload["value"] for s in (3, 4, 5)] == [21, 11, 1]
    calls.clear()
    assert await run(workflow, journal) == [1, 11, 21]
    assert calls == []


async def test_dict_key_order_survives_replay() -> None:
    async def make() -> dict[str, int]:
        return {"zebra": 1, "apple": 2, "mango": 3}

    seen: list[list[str]] = []

    async def workflow(ctx: durable.Context) -> list[str]:
        d = await ctx.step(make, name="make")
        keys = list(d)
        seen.append(keys)
        return keys

    journal = ListJournal()
    first = await run(workflow, journal)
    # what a replay from the database sees: the payload as the column gives it back
    import json

    for event in journal.events.values():
        object.__setattr__(event, "payload", json.loads(json.dumps(event.payload)))
    assert await run(workflow, journal) == first == ["zebra", "apple", "mango"]


async def test_lines_printed_by_steps_reach_the_log_once_in_delivery_order() -> None:
    def noisy(i: int) -> int:
        print(f"step {i} says hi")
        return i

    async def workflow(ctx: durable.Context) -> None:
        print("start")
        await ctx.step(noisy, 1, name="one")
        print("middle")
        await ctx.step(noisy, 2, name="two")
        print("end")

    journal = ListJournal()
    await run(workflow, journal)
    expected = ["start", "step 1 says hi", "middle", "step 2 says hi", "end"]
    assert journal.log() == expected
    # A replay after a crash that lost the last line: the steps do not run, nothing repeats.
    del journal.lines[4]
    await run(workflow, journal)
    assert journal.log() == expected
