"""GroupCommit's queueing rules, with a fake sender (the real statements: integration tests)."""

from __future__ import annotations

import asyncio

import pytest

from durable.store.group_commit import GroupCommit


class Sender:
    """Records each batch; holds it until released, so a test controls what queues meanwhile."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.release = asyncio.Event()
        self.sending = asyncio.Event()
        self.fail_with: Exception | None = None

    async def __call__(self, batch: list[tuple[str, int]]) -> list[str]:
        self.batches.append(batch)
        self.sending.set()
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [f"{key}:{n}" for key, n in batch]


def group(sender: Sender, max_batch: int = 128) -> GroupCommit[tuple[str, int]]:
    return GroupCommit(sender, key=lambda request: request[0], max_batch=max_batch)


async def test_an_idle_write_goes_alone_and_what_queues_meanwhile_goes_together() -> None:
    sender = Sender()
    commits = group(sender)
    first = asyncio.ensure_future(commits.submit(("a", 1)))
    await sender.sending.wait()
    rest = [asyncio.ensure_future(commits.submit((key, 1))) for key in "bcd"]
    await asyncio.sleep(0)  # one loop turn: the tasks above run up to their submit (no timing)
    sender.release.set()
    assert await first == "a:1"
    assert await asyncio.gather(*rest) == ["b:1", "c:1", "d:1"]
    assert sender.batches == [[("a", 1)], [("b", 1), ("c", 1), ("d", 1)]]


async def test_two_writes_of_one_task_never_share_a_statement_and_keep_their_order() -> None:
    sender = Sender()
    commits = group(sender)
    sender.release.set()
    results = await asyncio.gather(
        commits.submit(("a", 1)), commits.submit(("a", 2)), commits.submit(("b", 1))
    )
    assert results == ["a:1", "a:2", "b:1"]
    assert sender.batches == [[("a", 1), ("b", 1)], [("a", 2)]]


async def test_batches_are_capped() -> None:
    sender = Sender()
    commits = group(sender, max_batch=2)
    sender.release.set()
    await asyncio.gather(*(commits.submit((str(n), n)) for n in range(5)))
    assert [len(batch) for batch in sender.batches] == [2, 2, 1]


async def test_a_failed_statement_fails_every_write_in_it_and_the_next_ones_still_go() -> None:
    sender = Sender()
    commits = group(sender)
    sender.fail_with = RuntimeError("the statement failed")
    first = asyncio.ensure_future(commits.submit(("a", 1)))
    await sender.sending.wait()
    second = asyncio.ensure_future(commits.submit(("b", 1)))
    await asyncio.sleep(0)  # one loop turn: the tasks above run up to their submit (no timing)
    sender.release.set()
    for write in (first, second):
        with pytest.raises(RuntimeError, match="the statement failed"):
            await write
    sender.fail_with = None
    assert await commits.submit(("c", 1)) == "c:1"


async def test_a_write_whose_caller_gave_up_before_it_was_sent_is_not_sent() -> None:
    sender = Sender()
    commits = group(sender)
    first = asyncio.ensure_future(commits.submit(("a", 1)))
    await sender.sending.wait()
    abandoned = asyncio.ensure_future(commits.submit(("b", 1)))
    kept = asyncio.ensure_future(commits.submit(("c", 1)))
    await asyncio.sleep(0)  # one loop turn: the tasks above run up to their submit (no timing)
    abandoned.cancel()
    sender.release.set()
    assert await first == "a:1"
    assert await kept == "c:1"
    assert sender.batches == [[("a", 1)], [("c", 1)]]


async def test_a_write_queued_just_as_the_sender_finishes_is_still_sent() -> None:
    """The caller of the last write wakes before the finished sender's done-callbacks run."""
    sender = Sender()
    sender.release.set()
    commits = group(sender)
    for n in range(3):
        async with asyncio.timeout(2):
            assert await commits.submit(("a", n)) == f"a:{n}"
