"""Flow control in the claim (SPEC 12), statement by statement against a real Postgres.

The claims run as several "workers" at once (several pool connections); the caps are read back
from the task rows. End-to-end runs with real worker processes are in
tests/acceptance/test_flow_control.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

import durable
from durable.store.store import Store

WF = "m:f"


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[durable.Client]:
    async with durable.Client(db_url) as c:
        yield c


async def claim_all(store: Store, queue: str, workers: int, limit: int) -> list[int]:
    """``workers`` claims at once (plain then limited, as a worker does); the ids claimed."""

    async def one(n: int) -> list[int]:
        plain = await store.claim(f"w{n}", [queue], limit)
        limited, _ = await store.claim_limited(f"w{n}", [queue], limit)
        return [t.id for t in plain + limited]

    results = await asyncio.gather(*(one(n) for n in range(workers)))
    return [i for ids in results for i in ids]


async def finish(db_url: str, ids: list[int], state: str = "complete") -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "UPDATE durable.tasks SET state = $2, worker_id = NULL WHERE id = ANY($1::bigint[])",
            ids,
            state,
        )
    finally:
        await conn.close()


async def test_priority_then_launch_order(client: durable.Client) -> None:
    ids = [(await client.launch(WF, queue="p", priority=p)).id for p in (5, 0, 5, -1, 0)]
    claimed = []
    for _ in ids:
        [task] = await client.store.claim("w", ["p"], 1)
        claimed.append(task.id)
    assert claimed == [ids[3], ids[1], ids[4], ids[0], ids[2]]


async def test_concurrency_cap_holds_across_racing_claims(
    client: durable.Client, db_url: str
) -> None:
    await client.configure_queue("c", concurrency=3)
    ids = [(await client.launch(WF, queue="c")).id for _ in range(20)]
    first = await claim_all(client.store, "c", workers=8, limit=5)
    assert len(first) == 3
    assert await claim_all(client.store, "c", workers=8, limit=5) == []
    await finish(db_url, first[:2], "suspended")  # a suspension frees its slot
    second = await claim_all(client.store, "c", workers=8, limit=5)
    assert len(second) == 2
    assert set(first + second) <= set(ids)
    await client.configure_queue("c", concurrency=None)  # lifted: the plain claim takes the rest
    assert len(await client.store.claim("w", ["c"], 100)) == 20 - 3 - 2


async def test_key_concurrency_counts_started_unfinished_tasks(
    client: durable.Client, db_url: str
) -> None:
    await client.configure_queue("k", key_concurrency=1)
    a = [(await client.launch(WF, queue="k", concurrency_key="a")).id for _ in range(3)]
    b = [(await client.launch(WF, queue="k", concurrency_key="b")).id for _ in range(2)]
    free = (await client.launch(WF, queue="k")).id  # no key: no key limit
    first = await claim_all(client.store, "k", workers=4, limit=10)
    assert sorted(first) == sorted([a[0], b[0], free])
    await finish(db_url, [a[0]], "suspended")  # suspended still holds the key's slot
    assert await claim_all(client.store, "k", workers=4, limit=10) == []
    await finish(db_url, [a[0]], "pending")  # woken: it resumes, taking no second slot
    assert await claim_all(client.store, "k", workers=4, limit=10) == [a[0]]
    await finish(db_url, [a[0], b[0]])
    assert sorted(await claim_all(client.store, "k", workers=4, limit=10)) == [a[1], b[1]]


async def test_rate_counts_starts_per_window(client: durable.Client) -> None:
    await client.configure_queue("r", rate=(2, 30.0))
    for _ in range(5):
        await client.launch(WF, queue="r")
    assert len(await claim_all(client.store, "r", workers=4, limit=10)) == 2
    assert await claim_all(client.store, "r", workers=4, limit=10) == []
    _, reopens = await client.store.claim_limited("w", ["r"], 10)
    assert reopens is not None


async def test_paused_queue_is_not_claimed_until_resumed(client: durable.Client) -> None:
    await client.launch(WF, queue="z")
    await client.configure_queue("z", paused=True)
    assert await claim_all(client.store, "z", workers=2, limit=10) == []
    await client.configure_queue("z", paused=False)
    assert len(await claim_all(client.store, "z", workers=2, limit=10)) == 1
    [queue] = [q for q in await client.queues() if q.name == "z"]
    assert queue.running == 1 and not queue.paused


async def test_debounce_folds_launches_into_one_task_with_the_last_args(
    client: durable.Client,
) -> None:
    first = await client.launch(
        WF, queue="d", args=[1], debounce=durable.Debounce("u", delay=30, max_delay=60)
    )
    again = await client.launch(
        WF, queue="d", args=[2], debounce=durable.Debounce("u", delay=30, max_delay=60)
    )
    assert again.id == first.id and first.created and not again.created
    info = await client.get(first.id)
    assert info.state == "pending"
    assert await client.store.claim("w", ["d"], 10) == []  # not before its delay
    other = await client.launch(WF, queue="d", debounce=durable.Debounce("v", delay=0))
    [claimed] = await client.store.claim("w", ["d"], 10)
    assert claimed.id == other.id
    assert (await client.store.get_task(first.id)).state == "pending"


async def test_debounce_never_moves_past_max_delay(client: durable.Client, db_url: str) -> None:
    first = await client.launch(WF, queue="d", debounce=durable.Debounce("x", 0.0, 0.0))
    await client.launch(WF, queue="d", args=[9], debounce=durable.Debounce("x", 30, 30))
    [claimed] = await client.store.claim("w", ["d"], 10)  # capped at first launch + 0 s
    assert claimed.id == first.id and claimed.args == [9]
    later = await client.launch(WF, queue="d", debounce=durable.Debounce("x", 0.0))
    assert later.id != first.id and later.created  # the first one started: a new task
