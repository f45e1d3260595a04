"""A nightly report on a cron schedule: 02:00 in Paris, once per night, whatever the fleet.

Every worker runs the scheduler; each tick launches exactly one task, keyed
``schedule:nightly-report:<tick in UTC>``. Register it once (it is stored in the database)::

    python -m examples.nightly_report      # or:
    durable schedule add nightly-report examples.nightly_report:nightly_report \\
        --cron '0 2 * * *' --tz Europe/Paris --overlap skip --catch-up 6h
    durable-worker &
    durable schedule list                  # with the next fire time
    durable schedule trigger nightly-report                       # a run now
    durable schedule backfill nightly-report --from 2026-12-01T00:00:00+01:00 \\
        --to 2026-12-03T00:00:00+01:00                            # the nights missed

``--catch-up 6h``: if no worker ran at 02:00 (a deploy, an outage), the report still goes out
when one starts before 08:00; later, that night is skipped (``backfill`` fills it in).
``--overlap skip``: a tick while last night's report still runs launches nothing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import durable

NAME = "nightly-report"
# By reference: run as ``python -m examples.nightly_report`` this module is ``__main__``.
WORKFLOW = "examples.nightly_report:nightly_report"


def build_report(day: str) -> dict[str, str]:
    """The expensive part (queries, rendering): a step, recorded once."""
    return {"day": day, "status": "ok"}


@durable.workflow
async def nightly_report(ctx: durable.Context, scheduled_at: str) -> dict[str, str]:
    """The report of the day before the tick; ``scheduled_at`` is the tick (ISO 8601, UTC)."""
    day = datetime.fromisoformat(scheduled_at).date().isoformat()
    report = await ctx.step(build_report, day, name="build")
    print(f"report for {day}: {report['status']}")
    return report


async def main() -> None:
    """Register (or update) the schedule and print when it fires next."""
    async with durable.Client() as client:
        info = await client.schedule(
            NAME,
            WORKFLOW,
            cron="0 2 * * *",
            timezone="Europe/Paris",
            overlap="skip",
            catch_up=6 * 3600,
        )
        print(f"{info.name}: next run at {info.next_at.isoformat()}")


if __name__ == "__main__":
    asyncio.run(main())
