"""Durable promises across processes: an order waits for a human approval.

``approve_order`` waits for the durable promise ``approval-<order>``. While it waits the task is
suspended (no worker holds it, for hours or weeks if need be); any process that completes the
promise, a shell included, wakes it on whichever worker is free.

Start a worker from the repository root, then the waiting side (``main`` launches the task,
streams its log and prints its result)::

    durable-worker &
    python -m examples.promises o-42

and, from another shell, approve (or ``durable promise reject approval-o-42 'too expensive'``)::

    durable promise resolve approval-o-42 '{"approved": true, "by": "ana"}'

The workflow can also be launched by itself::

    durable launch --tail --arg '"o-42"' 'approve o-42' examples.promises:approve_order
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import durable

# Launched by reference: run as ``python -m examples.promises`` this module is ``__main__``.
WORKFLOW = "examples.promises:approve_order"


@durable.workflow
async def approve_order(
    ctx: durable.Context, order_id: str, timeout: float | None = None
) -> dict[str, Any]:
    """Wait for ``approval-<order_id>`` and return the decision.

    A resolution's value is the decision (``{"approved": ..., "by": ...}``); a rejection's
    message is the reason it was refused; no answer within ``timeout`` seconds refuses it too.
    """
    promise_id = f"approval-{order_id}"
    print(f"order {order_id}: waiting for {promise_id}")
    try:
        decision = await ctx.promise(promise_id, timeout=timeout)
    except durable.PromiseRejected as rejection:
        print(f"order {order_id}: rejected: {rejection.message}")
        return {"order_id": order_id, "approved": False, "reason": rejection.message}
    except durable.Timeout:
        print(f"order {order_id}: no answer in time")
        return {"order_id": order_id, "approved": False, "reason": "timeout"}
    approved = bool(decision.get("approved")) if isinstance(decision, dict) else bool(decision)
    verdict = "approved" if approved else "not approved"
    print(f"order {order_id}: {verdict}: {json.dumps(decision, sort_keys=True)}")
    return {"order_id": order_id, "approved": approved, "decision": decision}


async def main(order_id: str) -> None:
    """Launch the approval of ``order_id`` (once per order), follow it and print its result."""
    async with durable.Client() as client:
        task = await client.launch(
            WORKFLOW, name=f"approve {order_id}", args=[order_id], key=f"approve-{order_id}"
        )
        print(f"task {task.id}: resolve approval-{order_id} to go on", flush=True)
        async for line in client.tail(task.id):
            print(line, flush=True)
        result = await client.result(task.id)
        print(f"result: {json.dumps(result, sort_keys=True)}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m examples.promises ORDER_ID")
    asyncio.run(main(sys.argv[1]))
