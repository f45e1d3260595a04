"""A rate-limited email sender: one email at a time per user, ten at once, 20 a second.

The queue ``emails`` is limited in the database, so every worker of the fleet obeys the same
limits, and they can be changed while the workers run (``durable queue set emails ...``)::

    durable-worker --queue emails &
    python -m examples.email_sender        # configures the queue, sends a few emails

or from the shell::

    durable queue set emails --concurrency 10 --key-concurrency 1 --rate 20/1
    durable launch --queue emails --concurrency-key ana \\
        --arg '"ana"' --arg '"Welcome"' 'welcome ana' examples.email_sender:send_email
    durable queue list

``--key-concurrency 1`` with the user as the concurrency key means two emails to the same user
never go out at once (their order is kept: equal priorities run in launch order), while
emails to different users go out in parallel, at most 10 at a time and 20 per second.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

import durable

QUEUE = "emails"
# By reference: run as ``python -m examples.email_sender`` this module is ``__main__``.
WORKFLOW = "examples.email_sender:send_email"


def deliver(user: str, subject: str, outbox: str | None) -> str:
    """The call to the mail provider (here: a line appended to the outbox file)."""
    line = f"{user}: {subject}"
    time.sleep(0.05)  # the provider's latency
    if outbox:
        with open(outbox, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    return line


@durable.workflow(queue=QUEUE)
async def send_email(
    ctx: durable.Context, user: str, subject: str, outbox: str | None = None
) -> str:
    """Send one email; the step is recorded, so a crash after it does not send it twice."""
    sent = await ctx.step(deliver, user, subject, outbox, name="deliver")
    print(f"sent {sent}")
    return sent


async def configure(client: durable.Client) -> None:
    """The queue's limits, stored in the database for every worker."""
    await client.configure_queue(QUEUE, concurrency=10, key_concurrency=1, rate=(20, 1.0))


async def send_all(
    client: durable.Client, emails: Sequence[tuple[str, str]], outbox: str | None = None
) -> list[int]:
    """Launch one task per (user, subject), keyed by user; their ids."""
    ids = []
    for user, subject in emails:
        task = await client.launch(
            WORKFLOW,
            name=f"{subject} to {user}",
            queue=QUEUE,
            args=[user, subject],
            kwargs={"outbox": outbox},
            concurrency_key=user,
        )
        ids.append(task.id)
    return ids


async def main() -> None:
    """Configure the queue, send a few emails, print what was sent."""
    emails = [(user, subject) for subject in ("Welcome", "Tips") for user in ("ana", "bo", "cy")]
    async with durable.Client() as client:
        await configure(client)
        ids = await send_all(client, emails, os.environ.get("EXAMPLE_OUTBOX"))
        for task_id in ids:
            print(await client.result(task_id, timeout=60))


if __name__ == "__main__":
    asyncio.run(main())
